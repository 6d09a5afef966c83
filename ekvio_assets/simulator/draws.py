"""Random draws of one row, seeded by the row's own key.

Every row of a report (a learner on a material, course or programme) draws its history from its
own stream, so any row can be drawn again alone, in any order, and comes out the same. The stream
is BLAKE2b in counter mode over the key, taken 32 bits at a time: seeding a Mersenne Twister
would cost more than drawing the row.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import struct
from collections.abc import MutableSequence, Sequence
from typing import Generic, TypeVar

_Item = TypeVar("_Item")
_BLOCK_WORDS = struct.Struct("<16I")  # one 64-byte digest
_WORD = 1 << 32


class Weighted(Generic[_Item]):
    """Items to pick from, each with an integer weight."""

    def __init__(self, items: Sequence[_Item], weights: Sequence[int]) -> None:
        self.items = tuple(items)
        self.cumulative = tuple(itertools.accumulate(weights))
        self.total = self.cumulative[-1]


class RowRandom:
    """The few methods of `random.Random` the generator uses, drawn from the stream of `key`.

    A number below n is (word * n) >> 32: biased by less than n / 2**32, which synthetic data can bear.
    """

    __slots__ = ("_key", "_blocks", "_words")

    def __init__(self, *key: object) -> None:
        self._key = "/".join(map(str, key)).encode()
        self._blocks = 1
        self._words = list(_BLOCK_WORDS.unpack(hashlib.blake2b(self._key, digest_size=64).digest()))

    def _word(self) -> int:
        try:
            return self._words.pop()
        except IndexError:
            block = hashlib.blake2b(self._key + self._blocks.to_bytes(4, "little"), digest_size=64)
            self._blocks += 1
            self._words.extend(_BLOCK_WORDS.unpack(block.digest()))
            return self._words.pop()

    def getrandbits(self, bits: int) -> int:
        if bits == 64:
            return self._word() << 32 | self._word()
        value = 0
        for _ in range(-(-bits // 32)):
            value = value << 32 | self._word()
        return value >> (-bits % 32)

    def random(self) -> float:
        """Uniform in [0, 1), in steps of 2**-32."""
        return self._word() / _WORD

    def chance(self, share: float) -> bool:
        return self._word() < share * _WORD

    def randrange(self, stop: int) -> int:
        """Uniform in [0, stop)."""
        if not 0 < stop <= _WORD:
            raise ValueError(f"randrange({stop}) is out of 1..2**32")
        return (self._word() * stop) >> 32

    def randint(self, low: int, high: int) -> int:
        """Uniform in [low, high]."""
        return low + ((self._word() * (high - low + 1)) >> 32)

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self._word() / _WORD

    def choice(self, items: Sequence[_Item]) -> _Item:
        return items[(self._word() * len(items)) >> 32]

    def pick(self, choices: Weighted[_Item]) -> _Item:
        """One of the choices, each as likely as its weight."""
        return choices.items[bisect.bisect_right(choices.cumulative, (self._word() * choices.total) >> 32)]

    def shuffle(self, items: MutableSequence[_Item]) -> None:
        for index in range(len(items) - 1, 0, -1):
            other = self.randrange(index + 1)
            items[index], items[other] = items[other], items[index]

    def sample(self, count: int, size: int) -> list[int]:
        """`size` distinct numbers of range(count), in the order drawn."""
        if size * 4 < count:
            # Few of many: draw until distinct, without a list of them all.
            chosen: dict[int, None] = {}
            while len(chosen) < size:
                chosen[self.randrange(count)] = None
            return list(chosen)
        pool = list(range(count))
        for index in range(size):
            other = index + self.randrange(count - index)
            pool[index], pool[other] = pool[other], pool[index]
        return pool[:size]
