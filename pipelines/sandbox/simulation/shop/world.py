"""The simulated stores' world: countries, taxes, shipping, catalogue templates, names and the calendar.

Everything here is static data or a pure function of the date, so the simulator can recompute it at
any point of history (and on `advance`) without keeping state. Two flavours exist: an outdoor-gear
store (used for every non-BRL shop) and a Brazilian eco-products store (BRL shops).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Region:
    """A delivery region: where a person lives and which tax applies there."""

    province: str | None  # provinceCode; None where Shopify has no provinces (GB, DE, PT)
    city: str
    zip: str
    tax_title: str | None
    tax_rate: float  # 0.0 when no tax is charged


@dataclass(frozen=True)
class ShippingRate:
    title: str
    code: str
    cents: int
    free_over_cents: int | None  # order subtotal from which this rate is free


@dataclass(frozen=True)
class Country:
    code: str
    regions: tuple[Region, ...]
    rates: tuple[ShippingRate, ...]  # first is the default; the second is chosen by ~12% of buyers
    tax_shipping: bool  # VAT/GST countries tax shipping too; US states mostly do not


@dataclass(frozen=True)
class ProductTemplate:
    product_type: str
    noun: str
    price_range: tuple[int, int]  # cents
    option: str | None  # option name, e.g. "Size"; None for single-variant products
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sale:
    """A promotion active on one day: a sitewide automatic discount or a limited discount code."""

    title: str  # automatic discount title, or the discount code
    percent: float
    automatic: bool  # True: every order gets it; False: a code that `usage` of buyers enter
    usage: float = 1.0


@dataclass(frozen=True)
class Flavor:
    """Everything that differs between the two kinds of demo store."""

    countries: dict[str, Country]
    templates: tuple[ProductTemplate, ...]
    adjectives: tuple[str, ...]
    title_format: str  # "{adj} {noun}" or "{noun} {adj}"
    vendors: tuple[str, ...]
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    locale: str
    weekly: tuple[float, ...]  # demand multiplier Monday..Sunday
    welcome_code: str
    fixed_code: str  # a fixed-amount code, for orders over `fixed_code_minimum_cents`
    fixed_code_cents: int
    fixed_code_minimum_cents: int
    summer_peak_doy: int  # day of year where the smooth yearly wave peaks
    yearly_amplitude: float
    refund_notes: tuple[str | None, ...]  # the first names a defect: used by the defective-batch refunds


def _region(province: str | None, city: str, zip_code: str, tax: tuple[str, float] | None) -> Region:
    return Region(province, city, zip_code, tax[0] if tax else None, tax[1] if tax else 0.0)


_INTL_USD = (ShippingRate("International Shipping", "intl", 2495, None),
             ShippingRate("International Express", "intl-express", 4495, None))

OUTDOOR = Flavor(
    countries={
        "US": Country("US", (
            _region("NY", "New York", "10001", ("NY State Tax", 0.08875)),
            _region("CA", "Los Angeles", "90012", ("CA State Tax", 0.0725)),
            _region("TX", "Austin", "73301", ("TX State Tax", 0.0625)),
            _region("WA", "Seattle", "98101", ("WA State Tax", 0.065)),
            _region("CO", "Denver", "80202", ("CO State Tax", 0.029)),
            _region("OR", "Portland", "97201", None),
            _region("IL", "Chicago", "60601", ("IL State Tax", 0.0625)),
            _region("MA", "Boston", "02108", ("MA State Tax", 0.0625)),
            _region("FL", "Miami", "33101", ("FL State Tax", 0.06)),
            _region("UT", "Salt Lake City", "84101", ("UT State Tax", 0.061)),
        ), (ShippingRate("Standard Shipping", "standard", 695, 7500),
            ShippingRate("Expedited Shipping", "expedited", 1495, None)), False),
        "CA": Country("CA", (
            _region("ON", "Toronto", "M5H 2N2", ("HST", 0.13)),
            _region("BC", "Vancouver", "V6B 1A1", ("GST", 0.05)),
            _region("QC", "Montreal", "H2Y 1C6", ("GST", 0.05)),
            _region("AB", "Calgary", "T2P 1J9", ("GST", 0.05)),
        ), (ShippingRate("Canada Standard", "ca-standard", 1495, None),) + _INTL_USD[1:], True),
        "GB": Country("GB", (
            _region(None, "London", "EC1A 1BB", ("VAT", 0.20)),
            _region(None, "Manchester", "M1 1AE", ("VAT", 0.20)),
            _region(None, "Edinburgh", "EH1 1YZ", ("VAT", 0.20)),
        ), _INTL_USD, True),
        "AU": Country("AU", (
            _region("NSW", "Sydney", "2000", ("GST", 0.10)),
            _region("VIC", "Melbourne", "3000", ("GST", 0.10)),
            _region("QLD", "Brisbane", "4000", ("GST", 0.10)),
        ), _INTL_USD, True),
        "DE": Country("DE", (
            _region(None, "Berlin", "10115", ("MwSt", 0.19)),
            _region(None, "Munich", "80331", ("MwSt", 0.19)),
            _region(None, "Hamburg", "20095", ("MwSt", 0.19)),
        ), _INTL_USD, True),
    },
    templates=(
        ProductTemplate("Footwear", "Trail Runner", (9900, 16900), "Size", ("8", "9", "10", "11", "12")),
        ProductTemplate("Footwear", "Hiking Boot", (14900, 24900), "Size", ("8", "9", "10", "11", "12")),
        ProductTemplate("Apparel", "Rain Shell", (12900, 29900), "Size", ("S", "M", "L", "XL")),
        ProductTemplate("Apparel", "Down Jacket", (17900, 34900), "Size", ("S", "M", "L", "XL")),
        ProductTemplate("Apparel", "Merino Base Layer", (5900, 9900), "Size", ("S", "M", "L", "XL")),
        ProductTemplate("Apparel", "Fleece Pullover", (6900, 11900), "Size", ("S", "M", "L", "XL")),
        ProductTemplate("Apparel", "Hiking Socks", (1499, 2499), "Size", ("S", "M", "L")),
        ProductTemplate("Packs", "Daypack 22L", (7900, 12900), "Color", ("Slate", "Moss", "Ember")),
        ProductTemplate("Packs", "Backpack 45L", (17900, 27900), "Color", ("Slate", "Moss")),
        ProductTemplate("Camping", "Tent 2P", (24900, 44900), None),
        ProductTemplate("Camping", "Sleeping Bag", (14900, 29900), "Length", ("Regular", "Long")),
        ProductTemplate("Camping", "Sleeping Pad", (6900, 15900), None),
        ProductTemplate("Camping", "Camp Stove", (4900, 12900), None),
        ProductTemplate("Accessories", "Headlamp", (2999, 5999), "Color", ("Black", "Orange")),
        ProductTemplate("Accessories", "Insulated Bottle", (2499, 4499), "Color", ("Slate", "Moss", "Sand")),
        ProductTemplate("Accessories", "Trekking Poles", (7999, 14999), None),
        ProductTemplate("Accessories", "Water Filter", (3499, 5999), None),
        ProductTemplate("Accessories", "Beanie", (1999, 3499), "Color", ("Charcoal", "Rust", "Navy")),
    ),
    adjectives=("Summit", "Ridge", "Alpine", "Canyon", "Granite", "Cascade", "Tundra", "Sierra", "Boreal",
                "Timberline", "Glacier", "Mesa", "Aspen", "Basin", "Crest", "Juniper", "Talus", "Cirque"),
    title_format="{adj} {noun}",
    vendors=("Summit Outdoor", "Northbound Gear", "Trailcraft"),
    first_names=("James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
                 "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah",
                 "Chris", "Karen", "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Emily", "Mark", "Olivia",
                 "Noah", "Emma", "Liam", "Ava", "Ethan", "Mia", "Lucas", "Chloe", "Oliver", "Grace"),
    last_names=("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
                "Martinez", "Hernandez", "Lopez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson",
                "Martin", "Lee", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Young", "Allen",
                "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell"),
    locale="en",
    weekly=(1.06, 1.03, 1.0, 0.98, 0.94, 0.90, 1.09),
    welcome_code="WELCOME10",
    fixed_code="TAKE5",
    fixed_code_cents=500,
    fixed_code_minimum_cents=5000,
    summer_peak_doy=172,
    yearly_amplitude=0.10,
    refund_notes=("Arrived damaged", "Wrong size", "Changed mind", "Not as described", None),
)

_INTL_BRL = (ShippingRate("Envio Internacional", "intl", 8990, None),)

GREEN_BR = Flavor(
    countries={
        "BR": Country("BR", (
            _region("SP", "São Paulo", "01310-100", ("ICMS", 0.18)),
            _region("RJ", "Rio de Janeiro", "20040-002", ("ICMS", 0.20)),
            _region("MG", "Belo Horizonte", "30130-010", ("ICMS", 0.18)),
            _region("RS", "Porto Alegre", "90010-150", ("ICMS", 0.17)),
            _region("PR", "Curitiba", "80010-000", ("ICMS", 0.195)),
            _region("BA", "Salvador", "40020-000", ("ICMS", 0.205)),
            _region("PE", "Recife", "50010-000", ("ICMS", 0.205)),
        ), (ShippingRate("PAC", "pac", 1990, 29900), ShippingRate("SEDEX", "sedex", 3490, None)), False),
        "PT": Country("PT", (
            _region(None, "Lisboa", "1100-148", ("IVA", 0.23)),
            _region(None, "Porto", "4000-322", ("IVA", 0.23)),
        ), _INTL_BRL, True),
        "AR": Country("AR", (
            _region("C", "Buenos Aires", "C1002", None),
            _region("X", "Córdoba", "X5000", None),
        ), _INTL_BRL, False),
    },
    templates=(
        ProductTemplate("Casa", "Garrafa Térmica", (6990, 12990), "Cor", ("Verde", "Areia", "Grafite")),
        ProductTemplate("Cozinha", "Kit Canudos de Inox", (2990, 4990), None),
        ProductTemplate("Cozinha", "Pote de Vidro", (2490, 5990), "Tamanho", ("500 ml", "1 L")),
        ProductTemplate("Higiene", "Escova de Bambu", (1290, 2490), "Cerdas", ("Macias", "Médias")),
        ProductTemplate("Higiene", "Sabonete Natural", (1490, 2990), "Aroma", ("Lavanda", "Alecrim", "Capim-limão")),
        ProductTemplate("Higiene", "Shampoo Sólido", (3490, 5490), None),
        ProductTemplate("Bolsas", "Ecobag de Algodão", (3990, 6990), "Cor", ("Cru", "Verde")),
        ProductTemplate("Cozinha", "Pano de Cera de Abelha", (3490, 5990), None),
        ProductTemplate("Casa", "Composteira Doméstica", (19900, 34900), None),
        ProductTemplate("Moda", "Camiseta Orgânica", (7990, 12990), "Tamanho", ("P", "M", "G", "GG")),
        ProductTemplate("Cozinha", "Bucha Vegetal", (990, 1990), None),
        ProductTemplate("Casa", "Vela de Soja", (4490, 7990), "Aroma", ("Baunilha", "Cedro")),
    ),
    adjectives=("Raiz", "Mata", "Ipê", "Jatobá", "Cerrado", "Caatinga", "Araucária", "Buriti", "Pitanga", "Açaí"),
    title_format="{noun} {adj}",
    vendors=("Loja Verde", "Terra Viva", "Eco Raiz"),
    first_names=("Ana", "Maria", "João", "Pedro", "Lucas", "Juliana", "Gabriel", "Fernanda", "Rafael", "Beatriz",
                 "Mateus", "Camila", "Gustavo", "Larissa", "Felipe", "Mariana", "Bruno", "Letícia", "Thiago",
                 "Amanda", "Diego", "Patrícia", "Rodrigo", "Carolina", "Vinícius", "Isabela"),
    last_names=("Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira", "Lima",
                "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares", "Fernandes",
                "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Moreira"),
    locale="pt-BR",
    weekly=(1.05, 1.04, 1.02, 1.0, 0.95, 0.88, 1.06),
    welcome_code="BEMVINDO10",
    fixed_code="DESCONTO20",
    fixed_code_cents=2000,
    fixed_code_minimum_cents=15000,
    summer_peak_doy=355,
    yearly_amplitude=0.06,
    refund_notes=("Produto com defeito", "Desistência da compra", "Chegou danificado", None),
)

GENERIC_COUNTRY_REGION = _region(None, "Capital", "00000", None)


def flavor_for(currency: str) -> Flavor:
    """The catalogue and customer base that fit a shop currency."""
    return GREEN_BR if currency == "BRL" else OUTDOOR


def country(flavor: Flavor, code: str) -> Country:
    """Country data, or a plain untaxed country for codes the flavour does not describe."""
    found = flavor.countries.get(code)
    if found is not None:
        return found
    intl = next(iter(flavor.countries.values())).rates[-1]
    return Country(code, (GENERIC_COUNTRY_REGION,), (intl,), False)


def country_weights(codes: list[str]) -> list[float]:
    """Order share per country: the first (home) country dominates, the rest taper off."""
    if len(codes) == 1:
        return [1.0]
    home = 0.74 if len(codes) > 3 else 0.86
    tail = [1.0 / (rank + 1) for rank in range(len(codes) - 1)]
    return [home] + [(1 - home) * t / sum(tail) for t in tail]


# -- the calendar: holidays, sales and demand ---------------------------------------------------


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th `weekday` (0 = Monday) of a month; n = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def black_friday(year: int) -> date:
    return _nth_weekday(year, 11, 3, 4) + timedelta(days=1)


def _newsletter_day(day: date) -> bool:
    """Newsletter codes run on the first Thursday of each month and the Friday after (not Nov/Dec)."""
    if day.month in (11, 12):
        return False
    first_thursday = _nth_weekday(day.year, day.month, 3, 1)
    return day in (first_thursday, first_thursday + timedelta(days=1))


def holiday_multiplier(flavor: Flavor, day: date) -> float:
    """Demand from the holiday season and the dated sales, on top of growth and the weekly cycle."""
    bf = black_friday(day.year)
    offset = (day - bf).days
    if 0 <= offset <= 3:  # Black Friday to Cyber Monday
        return (2.8, 2.0, 1.9, 2.4)[offset]
    if -7 <= offset < 0:  # the week before Black Friday warms up
        return 1.15 + 0.04 * (7 + offset)
    if day.month == 12:
        if day.day <= 20:
            return 1.35
        if day.day <= 24:
            return 1.1
        if day.day == 25:
            return 0.5
        return 0.9
    if day.month == 1 and day.day <= 10:
        return 0.85
    for sale_day, lift in _dated_sales(flavor, day.year):
        if day in sale_day:
            return lift
    if _newsletter_day(day):
        return 1.08
    return 1.0


def _dated_sales(flavor: Flavor, year: int) -> list[tuple[set[date], float]]:
    """Non-holiday sales of one year: the days they cover and their demand lift."""
    if flavor is GREEN_BR:
        consumer = date(year, 3, 15)
        mothers = _nth_weekday(year, 5, 6, 2)
        return [({consumer + timedelta(days=i) for i in (-1, 0, 1)}, 1.22),
                ({mothers - timedelta(days=i) for i in range(2, 7)}, 1.15)]
    memorial = _nth_weekday(year, 5, 0, -1)
    return [({memorial - timedelta(days=i) for i in range(3)}, 1.25),
            ({date(year, 7, d) for d in (3, 4, 5)}, 1.15)]


def sales_on(flavor: Flavor, day: date) -> list[Sale]:
    """The promotions running on `day`, in the order Shopify would apply them."""
    bf = black_friday(day.year)
    if 0 <= (day - bf).days <= 3:
        title = "Black Friday Verde" if flavor is GREEN_BR else "Black Friday Sale"
        return [Sale(title, 30.0 if flavor is GREEN_BR else 25.0, automatic=True)]
    if flavor is GREEN_BR:
        consumer, mothers = _dated_sales(flavor, day.year)
        if day in consumer[0]:
            return [Sale("Semana do Consumidor", 15.0, automatic=True)]
        if day in mothers[0]:
            return [Sale("MAES15", 15.0, automatic=False, usage=0.3)]
    else:
        memorial, july = _dated_sales(flavor, day.year)
        if day in memorial[0]:
            return [Sale("Memorial Day Sale", 15.0, automatic=True)]
        if day in july[0]:
            return [Sale("JULY4", 20.0, automatic=False, usage=0.35)]
    if _newsletter_day(day):
        return [Sale("NEWS10", 10.0, automatic=False, usage=0.2)]
    return []


def is_busy(flavor: Flavor, day: date) -> bool:
    """Whether `day` is in the holiday season or near a sale, where injected anomalies must not go."""
    if (day.month == 11 and day.day >= 1) or day.month == 12 or (day.month == 1 and day.day <= 12):
        return True
    return any(holiday_multiplier(flavor, day + timedelta(days=d)) != 1.0 for d in range(-4, 5))


def yearly_wave(flavor: Flavor, day: date) -> float:
    """A smooth seasonal wave (outdoor gear peaks in early summer; Brazil in its summer)."""
    doy = day.timetuple().tm_yday
    return 1.0 + flavor.yearly_amplitude * math.cos(2 * math.pi * (doy - flavor.summer_peak_doy) / 365.25)


# Local-time order share per hour: quiet nights, a lunchtime bump and an evening peak.
HOURLY = (0.6, 0.4, 0.3, 0.25, 0.25, 0.35, 0.6, 1.0, 1.4, 1.6, 1.7, 1.8,
          1.9, 1.8, 1.7, 1.7, 1.8, 2.0, 2.2, 2.4, 2.5, 2.3, 1.8, 1.1)
