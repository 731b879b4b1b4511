"""A session's region (``checkout.regionId``): from the rules' table, or from a regions service
whose answer the API recorded in a ``checkout.region_resolved`` event before appending it.

VTEX's checkout-session needs ``public.country`` plus ``public.postalCode`` or
``public.geoCoordinates`` ("longitude,latitude"); ``public.regionId`` wins when a client gives it.
A recorded answer counts only while the inputs it was asked for are still the session's: it names
them by :func:`lookup_key`, a digest, so that event holds no postal code or coordinates in plain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, NamedTuple

from projections.rules import CoordinatesError, RegionRule, normalize_postal_code, parse_coordinates


class RegionInputs(NamedTuple):
    country: str
    postal_code: str | None  # normalized
    coordinates: tuple[float, float] | None  # (lon, lat)


def region_inputs(country: Any, postal_code: Any, geo_coordinates: Any) -> RegionInputs | None:
    """The inputs a region is looked up by, normalized; None when there are not enough of them
    (no country, or neither a postal code nor valid coordinates)."""
    if not isinstance(country, str) or not country:
        return None
    postal = normalize_postal_code(postal_code) if isinstance(postal_code, str) and postal_code else None
    try:
        coordinates = parse_coordinates(geo_coordinates) if geo_coordinates else None
    except CoordinatesError:
        coordinates = None  # the API refuses these; an event on the log may still hold them
    if postal is None and coordinates is None:
        return None
    return RegionInputs(country.upper(), postal or None, coordinates)


def lookup_key(inputs: RegionInputs) -> str:
    """What a recorded lookup was asked for, as a digest (stable across Python versions)."""
    coordinates = "" if inputs.coordinates is None else "{:.6f},{:.6f}".format(*inputs.coordinates)
    text = f"{inputs.country}|{inputs.postal_code or ''}|{coordinates}"
    return hashlib.sha256(text.encode()).hexdigest()


def from_table(rules: tuple[RegionRule, ...], inputs: RegionInputs) -> str | None:
    """The first rule that matches: a postal code (exact or by prefix) or an area holding the
    coordinates; every postal-code rule is tried before the areas (the more precise input first)."""
    for rule in rules:
        if rule.country != inputs.country:
            continue
        postal = inputs.postal_code
        if postal is not None and (
            rule.postal_code == postal or (rule.postal_code_prefix and postal.startswith(rule.postal_code_prefix))
        ):
            return rule.region_id
    if inputs.coordinates is not None:
        lon, lat = inputs.coordinates
        for rule in rules:
            if rule.country == inputs.country and rule.area is not None:
                west, south, east, north = rule.area
                if west <= lon <= east and south <= lat <= north:
                    return rule.region_id
    return None


def recorded(lookup: Any, inputs: RegionInputs) -> tuple[bool, str | None]:
    """(True, region) when ``lookup`` (the ``region`` fact) answers these very inputs."""
    if isinstance(lookup, Mapping) and lookup.get("key") == lookup_key(inputs):
        region = lookup.get("regionId")
        return True, region if isinstance(region, str) and region else None
    return False, None
