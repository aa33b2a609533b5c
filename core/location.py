"""PLACEHOLDER until the gazetteer-based extractor lands (owned by the location engineer)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    kecamatan: str | None = None
    kelurahan: str | None = None
    street: str | None = None
    landmark: str | None = None
    rt: str | None = None
    rw: str | None = None
    lat: float | None = None
    lon: float | None = None

    def key(self) -> str | None:
        return None


def extract(text: str) -> Place:
    return Place()


def nearest_kelurahan(lat: float, lon: float) -> Place:
    return Place(lat=lat, lon=lon)
