"""The people and things of a generated company: learners, materials, courses and programmes.

They are few next to the report rows (a learner on a material, a course, a programme), so they
are drawn once, in order, from one generator seeded by the company's seed and kept in memory.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from ekvio_assets.reports.specs import COURSE_STATISTICS, MATERIAL_TYPES
from ekvio_assets.simulator.company import Period

# Material types that award points; the others have `points: null`.
POINTED_MATERIAL_TYPES = frozenset({"test", "scorm", "longread"})
COURSE_CONTENT_TYPES = tuple(
    field.column.removesuffix("_viewed") for field in COURSE_STATISTICS.fields if field.column.endswith("_viewed")
)

# Company-specific course columns: a group type beyond the documented ones and two questionnaire
# questions (the vendor example carries form_question_10).
EXTRA_GROUP_COLUMNS = ("group_shift",)
QUESTIONNAIRE_COLUMNS = ("form_question_10", "form_question_12")
COURSE_EXTRA_COLUMNS = EXTRA_GROUP_COLUMNS + QUESTIONNAIRE_COLUMNS
GROUP_COLUMNS = (
    *(field.column for field in COURSE_STATISTICS.fields if field.column.startswith("group_")),
    *EXTRA_GROUP_COLUMNS,
)


@dataclass(frozen=True)
class Learner:
    user_id: int
    login: str
    fio: str
    user_status: str
    groups: Mapping[str, str | None]  # GROUP_COLUMNS -> value
    answers: Mapping[str, str | None]  # QUESTIONNAIRE_COLUMNS -> answer


@dataclass(frozen=True)
class Material:
    material_id: int  # unique within its type only, as in the vendor's files
    name: str | None
    type: str
    points: int | None
    visibility: str  # the material's own status: active, hide
    question_count: int | None  # tests only
    pass_percent: int | None  # tests only: an attempt scoring at least this is completed


@dataclass(frozen=True)
class Course:
    material_id: int
    name: str | None
    is_required: int
    content_totals: Mapping[str, int]  # COURSE_CONTENT_TYPES -> materials of that type
    max_interaction_scores: int
    max_final_scores: int
    has_scorm: bool


@dataclass(frozen=True)
class Program:
    program_id: int
    name: str | None
    category_id: int
    deadline_type: str | None  # "fixed" (deadline_at), "relative" (a period from the start) or None
    deadline_at: datetime | None
    deadline_period_days: int | None
    points: int
    # MATERIAL_TYPES -> materials of that type; empty for a programme without materials yet, whose
    # counts the API sends as PHP's empty array, `[]`.
    material_counts: Mapping[str, int]

    @property
    def materials_total(self) -> int:
        return sum(self.material_counts.values())

    @property
    def deadline_period(self) -> str | None:
        return None if self.deadline_period_days is None else f"P{self.deadline_period_days}D"

    def deadline_for(self, start_at: datetime) -> datetime | None:
        if self.deadline_at is not None:
            return self.deadline_at
        if self.deadline_period_days is not None:
            return start_at + timedelta(days=self.deadline_period_days)
        return None


_SURNAMES = (
    ("Иванов", "ivanov"),
    ("Петров", "petrov"),
    ("Смирнов", "smirnov"),
    ("Кузнецов", "kuznetsov"),
    ("Попов", "popov"),
    ("Соколов", "sokolov"),
    ("Лебедев", "lebedev"),
    ("Козлов", "kozlov"),
    ("Новиков", "novikov"),
    ("Морозов", "morozov"),
    ("Волков", "volkov"),
    ("Бирюков", "biryukov"),
)
# (name, login initial, is female)
_FIRST_NAMES = (
    ("Иван", "i", False),
    ("Пётр", "p", False),
    ("Алексей", "a", False),
    ("Дмитрий", "d", False),
    ("Евгений", "e", False),
    ("Анна", "a", True),
    ("Мария", "m", True),
    ("Елена", "e", True),
    ("Ольга", "o", True),
    ("Наталья", "n", True),
)
_REGIONS = (
    ("Волгоградская область", "Волгоград"),
    ("Московская область", "Москва"),
    ("Свердловская область", "Екатеринбург"),
    ("Новосибирская область", "Новосибирск"),
    ("Республика Татарстан", "Казань"),
    ("Краснодарский край", "Краснодар"),
)
_GROUP_VALUES = {
    "group_role": ("Руководитель", "Специалист", "Разработчик", "Стажёр"),
    "group_position": ("Менеджер", "Разработчик", "Аналитик", "Продавец", "Кассир"),
    "group_team": ("Команда ИТ", "Команда ИТР", "Команда продаж", "Команда поддержки"),
    "group_department": ("Управление", "Управление ИТ", "Отдел продаж", "Склад"),
    "group_function": ("Программная разработка", "Продажи", "Логистика", "Обучение"),
    "group_shift": ("Дневная смена", "Ночная смена", "Вахта"),
}
_EXPERIENCE = ("до 1 года", "1-3 года", "более 3 лет")
_TOPICS = (
    "Техника безопасности",
    "Стандарты сервиса",
    "Продукты компании",
    "Работа с возражениями",
    "Охрана труда",
    "Кассовая дисциплина",
    "Информационная безопасность",
    "Адаптация",
)
_TYPE_TITLES = {
    "pdf": "Памятка",
    "scorm": "Интерактив",
    "link": "Ссылка",
    "html": "Статья",
    "test": "Тест",
    "video": "Видео",
    "longread": "Лонгрид",
    "document": "Документ",
}


def _chance(rng: random.Random, share: float) -> bool:
    return rng.random() < share


def _sometimes_none(rng: random.Random, value: str, none_share: float) -> str | None:
    return None if _chance(rng, none_share) else value


def _ids(rng: random.Random, first: int, count: int, max_step: int) -> list[int]:
    """Increasing ids with gaps, as a live system leaves them."""
    ids, current = [], first
    for _ in range(count):
        ids.append(current)
        current += rng.randint(1, max_step)
    return ids


def draw_learners(rng: random.Random, count: int) -> tuple[Learner, ...]:
    learners = []
    for user_id in _ids(rng, 30001, count, 3):
        surname, surname_latin = rng.choice(_SURNAMES)
        first_name, initial, female = rng.choice(_FIRST_NAMES)
        suffix = "а" if female else ""
        region, city = rng.choice(_REGIONS)
        groups: dict[str, str | None] = {"group_region": region, "group_city": _sometimes_none(rng, city, 0.05)}
        for column in GROUP_COLUMNS[2:]:
            groups[column] = _sometimes_none(rng, rng.choice(_GROUP_VALUES[column]), 0.05)
        answers = {
            "form_question_10": _sometimes_none(rng, "Ж" if female else "М", 0.1),
            "form_question_12": _sometimes_none(rng, rng.choice(_EXPERIENCE), 0.3),
        }
        learners.append(
            Learner(
                user_id=user_id,
                login=f"{surname_latin}{'a' if female else ''}.{initial}{user_id}",
                fio=f"{surname}{suffix} {first_name}",
                user_status="blocked" if _chance(rng, 0.08) else "active",
                groups=groups,
                answers=answers,
            )
        )
    return tuple(learners)


# Share of materials whose id is the id of an earlier material of another type, as in the
# vendor's example (135 is a video, a longread and a document).
_REUSED_ID_SHARE = 0.2


def draw_materials(rng: random.Random, count: int) -> tuple[Material, ...]:
    # Every type in turn, then shuffled: each type is present as soon as there are enough materials.
    types = [MATERIAL_TYPES[index % len(MATERIAL_TYPES)] for index in range(count)]
    rng.shuffle(types)
    ids = _ids(rng, 1001, count, 4)
    taken = set(zip(ids, types, strict=True))
    for index, type_ in enumerate(types):
        earlier = ids[rng.randrange(index)] if index and _chance(rng, _REUSED_ID_SHARE) else None
        if earlier is not None and (earlier, type_) not in taken:
            taken.discard((ids[index], type_))
            ids[index] = earlier
            taken.add((earlier, type_))
    materials = []
    for number, (material_id, type_) in enumerate(zip(ids, types, strict=True), start=1):
        is_test = type_ == "test"
        materials.append(
            Material(
                material_id=material_id,
                name=_sometimes_none(rng, f"{_TYPE_TITLES[type_]}: {rng.choice(_TOPICS)} {number}", 0.05),
                type=type_,
                points=rng.randint(5, 50) if type_ in POINTED_MATERIAL_TYPES else None,
                visibility="hide" if _chance(rng, 0.1) else "active",
                question_count=rng.randint(3, 15) if is_test else None,
                pass_percent=rng.choice((60, 70, 80, 90)) if is_test else None,
            )
        )
    return tuple(materials)


def draw_courses(rng: random.Random, count: int) -> tuple[Course, ...]:
    # Course ids live in their own range, apart from the learning materials'.
    return tuple(
        Course(
            material_id=material_id,
            name=_sometimes_none(rng, f"Курс: {rng.choice(_TOPICS)} {number}", 0.1),
            is_required=int(_chance(rng, 0.5)),
            content_totals={content: rng.randint(0, 4) for content in COURSE_CONTENT_TYPES},
            max_interaction_scores=rng.choice((0, rng.randint(5, 50))),
            max_final_scores=rng.choice((0, rng.randint(10, 100))),
            has_scorm=_chance(rng, 0.5),
        )
        for number, material_id in enumerate(_ids(rng, 18001, count, 5), start=1)
    )


def draw_programs(rng: random.Random, count: int, period: Period) -> tuple[Program, ...]:
    """The programmes; of three or more, the second has no materials yet."""
    programs = []
    for number, program_id in enumerate(_ids(rng, 501, count, 3), start=1):
        counts = {type_: rng.randint(0, 3) for type_ in MATERIAL_TYPES}
        if not any(counts.values()):
            counts["test"] = 1
        if number == 2 and count >= 3:
            counts = {}
        # Deadlines in the second half of the period, so some learners finish in time and some late.
        deadline_type = rng.choice(("fixed", "fixed", "relative", None))
        programs.append(
            Program(
                program_id=program_id,
                name=_sometimes_none(rng, f"Программа: {rng.choice(_TOPICS)} {number}", 0.1),
                category_id=rng.randint(1, 4),
                deadline_type=deadline_type,
                deadline_at=period.second_half.moment(rng) if deadline_type == "fixed" else None,
                deadline_period_days=rng.choice((7, 14, 30)) if deadline_type == "relative" else None,
                points=rng.randint(10, 200),
                material_counts=counts,
            )
        )
    return tuple(programs)
