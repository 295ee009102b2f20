"""The simulated store's catalogue: products, variants, prices, launches and occasional changes.

The catalogue is a pure function of the seed and the date: each product has its own random stream
of changes (a price change or a restock every couple of months), so the simulator can rebuild the
catalogue as it was on any day by replaying those streams, instead of storing it.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pipelines.sandbox.simulation.shop.orders import Ids, Money, decimal_string, iso
from pipelines.sandbox.simulation.shop.world import Flavor
from pipelines.sandbox.simulation.simulator import BusinessSpec, local_midnight, rng

PRICE_CHANGE_FACTORS = (0.85, 0.9, 1.05, 1.1, 1.15)
MEAN_DAYS_BETWEEN_CHANGES = 70
MIN_DAYS_BETWEEN_CHANGES = 20


def ascii_fold(text: str) -> str:
    """`São Paulo` -> `Sao Paulo`: for handles, SKUs and email addresses."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _handle(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", ascii_fold(title).lower()).strip("-")


def _shop_price(cents: int, brl: bool) -> int:
    """A shelf price: whole units ending in .99 (.90 in Brazil)."""
    return max(1, cents // 100) * 100 + (90 if brl else 99)


@dataclass(eq=False)
class Variant:
    number: int  # position within the product, 0-based
    gid: str
    inventory_gid: str
    title: str
    option_value: str | None
    sku: str
    price: int
    cost: int
    inventory: int
    compare_at: int | None = None
    updated: int = 0


@dataclass(eq=False)
class Product:
    index: int
    gid: str
    title: str
    vendor: str
    product_type: str
    option: str | None
    launch: date  # first day it can be sold
    created: int
    weight: float  # popularity: share of line picks, before normalising
    variants: list[Variant]
    events: random.Random  # this product's own stream of future changes
    next_change: date
    updated: int = 0

    def body(self, money: Money) -> dict[str, Any]:
        """The Product node with its variants inline."""
        prices = [v.price for v in self.variants]
        total = sum(v.inventory for v in self.variants)
        return {
            "id": self.gid,
            "legacyResourceId": self.gid.rsplit("/", 1)[1],
            "title": self.title,
            "handle": _handle(self.title),
            "vendor": self.vendor,
            "productType": self.product_type,
            "status": "ACTIVE",
            "tags": [self.product_type.lower()],
            "createdAt": iso(self.created),
            "updatedAt": iso(self.updated),
            "publishedAt": iso(self.created),
            "totalInventory": total,
            "tracksInventory": True,
            "hasOnlyDefaultVariant": self.option is None,
            "priceRangeV2": {"minVariantPrice": money.v2(min(prices)), "maxVariantPrice": money.v2(max(prices))},
            "variants": [
                {
                    "id": v.gid,
                    "legacyResourceId": v.gid.rsplit("/", 1)[1],
                    "title": v.title,
                    "displayName": f"{self.title} - {v.title}",
                    "sku": v.sku,
                    "barcode": None,
                    "position": v.number + 1,
                    "price": decimal_string(v.price),
                    "compareAtPrice": decimal_string(v.compare_at) if v.compare_at else None,
                    "inventoryQuantity": v.inventory,
                    "availableForSale": True,
                    "taxable": True,
                    "createdAt": iso(self.created),
                    "updatedAt": iso(v.updated),
                    "selectedOptions": [{"name": self.option or "Title", "value": v.title}],
                    "inventoryItem": {
                        "id": v.inventory_gid,
                        "sku": v.sku,
                        "tracked": True,
                        "unitCost": money.v2(v.cost),
                        "createdAt": iso(self.created),
                        "updatedAt": iso(v.updated),
                    },
                }
                for v in self.variants
            ],
        }


@dataclass
class Catalog:
    """The catalogue as of the last day passed to `open_day`."""

    products: list[Product]
    tz: str
    brl: bool
    _active: list[Product] = field(default_factory=list)
    _cum_weights: list[float] = field(default_factory=list)

    @classmethod
    def build(cls, spec: BusinessSpec, flavor: Flavor, seed: int, start: date, history_days: int,
              ids: Ids) -> "Catalog":
        """The products as they stand before the first day: most exist already, a fifth launch later."""
        draw = rng(seed, spec.workspace, "catalog")
        count = int(spec.scale.get("products", 40))
        titles = [(template, flavor.title_format.format(adj=adj, noun=template.noun))
                  for template in flavor.templates for adj in flavor.adjectives]
        draw.shuffle(titles)
        suffixes = ("", " II", " Pro", " Lite", " Max")
        brl = spec.currency == "BRL"
        products = []
        for index in range(count):
            template, title = titles[index % len(titles)]
            title += suffixes[(index // len(titles)) % len(suffixes)]
            if index < count * 0.8 or history_days < 90:
                launch = start
                created = local_midnight(start, spec.timezone) - draw.randrange(20, 400) * 86400
            else:
                launch = start + timedelta(days=draw.randrange(30, history_days - 30))
                created = local_midnight(launch, spec.timezone)
            price = _shop_price(draw.randrange(*template.price_range), brl)
            product_number = ids.product(index)
            values = template.values or ("Default Title",)
            sku_prefix = "".join(ch for ch in ascii_fold(title).upper() if ch.isalpha())[:4]
            variants = [
                Variant(
                    number=v,
                    gid=ids.gid("ProductVariant", ids.variant(index, v)),
                    inventory_gid=ids.gid("InventoryItem", ids.inventory_item(index, v)),
                    title=value,
                    option_value=value if template.option else None,
                    sku=f"{sku_prefix}-{index:04d}-{ascii_fold(value).upper().replace(' ', '')[:6]}",
                    price=price,
                    cost=price * draw.randrange(38, 56) // 100,
                    inventory=draw.randrange(40, 400),
                    updated=created,
                )
                for v, value in enumerate(values)
            ]
            events = rng(seed, spec.workspace, "product-changes", index)
            products.append(Product(
                index=index,
                gid=ids.gid("Product", product_number),
                title=title,
                vendor=flavor.vendors[index % len(flavor.vendors)],
                product_type=template.product_type,
                option=template.option,
                launch=launch,
                created=created,
                weight=0.0,
                variants=variants,
                events=events,
                next_change=launch + timedelta(days=_days_to_next_change(events)),
                updated=created,
            ))
        # Popularity follows a Zipf-like curve over a shuffled ranking.
        ranking = list(range(count))
        draw.shuffle(ranking)
        for rank, index in enumerate(ranking):
            products[index].weight = 1.0 / (rank + 1) ** 0.9
        return cls(products, spec.timezone, brl)

    def by_popularity(self, launched_by: date) -> list[Product]:
        """Products on sale on `launched_by`, most popular first."""
        return sorted((p for p in self.products if p.launch <= launched_by), key=lambda p: -p.weight)

    def share(self, product: Product) -> float:
        """The product's share of line picks among the products on sale today."""
        return product.weight / self._cum_weights[-1]

    def open_day(self, day: date) -> list[Product]:
        """Launch and change the products due on `day` (at local midnight); returns those touched."""
        midnight = local_midnight(day, self.tz)
        touched = []
        for product in self.products:
            if product.launch == day:
                product.updated = max(product.updated, product.created)
                touched.append(product)
            while product.next_change <= day:
                if product.next_change == day:
                    self._change(product, midnight)
                    if not touched or touched[-1] is not product:
                        touched.append(product)
                product.next_change += timedelta(days=_days_to_next_change(product.events))
        if not self._active or any(p.launch == day for p in self.products):
            self._active = [p for p in self.products if p.launch <= day]
            self._cum_weights = []
            running = 0.0
            for product in self._active:
                running += product.weight
                self._cum_weights.append(running)
        return touched

    def _change(self, product: Product, at: int) -> None:
        draw = product.events
        if draw.random() < 0.4:
            factor = draw.choice(PRICE_CHANGE_FACTORS)
            for variant in product.variants:
                new_price = _shop_price(int(variant.price * factor), self.brl)
                variant.compare_at = variant.price if new_price < variant.price else None
                variant.price = new_price
                variant.updated = at
        else:
            for variant in product.variants:
                variant.inventory = draw.randrange(80, 500)
                variant.updated = at
        product.updated = at

    def pick(self, draw: random.Random, count: int) -> list[Product]:
        """`count` distinct products (fewer on collisions), drawn by popularity."""
        chosen = draw.choices(self._active, cum_weights=self._cum_weights, k=count)
        unique = []
        for product in chosen:
            if product not in unique:
                unique.append(product)
        return unique


def _days_to_next_change(draw: random.Random) -> int:
    return MIN_DAYS_BETWEEN_CHANGES + int(draw.expovariate(1 / MEAN_DAYS_BETWEEN_CHANGES))

