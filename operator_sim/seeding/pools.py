"""Pools of realistic Russian name parts and address beginnings, drawn once from Faker.

Faker costs microseconds per call (an address about 25 µs), far too slow to call a
few times per row for millions of rows. So it is asked a fixed number of times, up
front, and the rows combine pool entries with a seeded ``random.Random``. Pool sizes
are constants: changing one changes every seeded database, so they are part of the
determinism contract (with the Faker version).
"""

from __future__ import annotations

from dataclasses import dataclass

from faker import VERSION as _FAKER_VERSION
from faker import Faker

__all__ = ["ADDRESS_POOL_BITS", "FAKER_VERSION", "NAME_POOL_BITS", "Pools", "build_pools"]

FAKER_VERSION: str = str(_FAKER_VERSION)
"""The installed Faker's version: seeded output is identical for identical versions."""

LOCALE = "ru_RU"
# Pool sizes are powers of two, so that ``getrandbits(bits)`` indexes them directly.
NAME_POOL_BITS = 10
"""1024 draws per name part and gender (Faker's lists are shorter, so its weights show)."""
ADDRESS_POOL_BITS = 13
"""8192 "postcode, town, street" beginnings; house and flat are added per row."""


@dataclass(frozen=True, slots=True)
class Pools:
    """Everything the row generator takes from Faker."""

    male_last: tuple[str, ...]
    male_first: tuple[str, ...]
    male_middle: tuple[str, ...]
    female_last: tuple[str, ...]
    female_first: tuple[str, ...]
    female_middle: tuple[str, ...]
    address_heads: tuple[str, ...]
    """Postcode, locality and street, e.g. ``123456, г. Апатиты, ул. Советов``."""  # noqa: RUF001 (Cyrillic on purpose)


def build_pools(seed: int) -> Pools:
    """Draw the pools from a ``ru_RU`` Faker seeded with ``seed`` (same seed, same pools)."""
    fake = Faker(LOCALE)
    fake.seed_instance(seed)

    def draw(method: str) -> tuple[str, ...]:
        make = getattr(fake, method)
        return tuple(str(make()) for _ in range(1 << NAME_POOL_BITS))

    male = (draw("last_name_male"), draw("first_name_male"), draw("middle_name_male"))
    female = (draw("last_name_female"), draw("first_name_female"), draw("middle_name_female"))
    # Registration addresses in towns: Faker's other locality prefixes (villages,
    # collective farms) next to a city's name read as nonsense.
    heads = tuple(
        f"{fake.postcode()}, г. {fake.city_name()}, {fake.street_name()}"  # noqa: RUF001 (Cyrillic on purpose)
        for _ in range(1 << ADDRESS_POOL_BITS)
    )
    return Pools(*male, *female, address_heads=heads)
