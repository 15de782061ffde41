"""The event and customer schemas every loader produces and every consumer relies on.

Events follow the public REES46 "eCommerce behavior data from multi category store"
export, plus ``retailer_id`` in fedmarket's own files. Customer tables carry direct
identifiers and quasi-identifiers so the anonymiser has real work to do.
"""

from __future__ import annotations

from typing import Final

EVENT_TYPES: Final[tuple[str, ...]] = ("view", "cart", "remove_from_cart", "purchase")

# Column -> pandas dtype of a validated event frame (event_time is tz-aware UTC).
EVENT_COLUMNS: Final[dict[str, str]] = {
    "event_time": "datetime64[ns, UTC]",
    "event_type": "string",
    "product_id": "int64",
    "category_id": "int64",
    "category_code": "string",
    "brand": "string",
    "price": "float64",
    "user_id": "string",
    "user_session": "string",
}
RETAILER_COLUMN: Final[str] = "retailer_id"

# Columns that must be present and non-null in every event row; the rest may be missing
# (REES46 itself leaves category_code and brand empty on many rows).
REQUIRED_EVENT_COLUMNS: Final[tuple[str, ...]] = ("event_time", "event_type", "price", "user_id")

DIRECT_IDENTIFIERS: Final[tuple[str, ...]] = ("name", "email", "phone", "street_address")
QUASI_IDENTIFIERS: Final[tuple[str, ...]] = ("birth_date", "postcode", "gender", "city")
CUSTOMER_COLUMNS: Final[tuple[str, ...]] = ("user_id", *DIRECT_IDENTIFIERS, *QUASI_IDENTIFIERS)

# File names inside a raw retailer directory written by `fedmarket data synth`.
EVENTS_STEM: Final[str] = "events"
CUSTOMERS_STEM: Final[str] = "customers"
