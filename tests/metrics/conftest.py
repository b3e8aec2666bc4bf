from collections.abc import Callable
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient


@dataclass(frozen=True)
class Scrape:
    """One answer of GET /metrics, parsed: value("saga_orders_total", outcome="completed")."""

    samples: dict[tuple[str, frozenset], float]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a series not (yet) shown."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def minus(self, earlier: "Scrape", name: str, **labels: str) -> float:
        return self.value(name, **labels) - earlier.value(name, **labels)


def parse(text: str) -> Scrape:
    return Scrape(
        {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
    )


@pytest.fixture
def scrape() -> Callable[..., Scrape]:
    """GET /metrics as Prometheus would, parsed."""

    def get(**headers: str) -> Scrape:
        response = APIClient().get("/metrics", **headers)
        assert response.status_code == 200, response.content[:500]
        assert response["Content-Type"].startswith("text/plain")
        return parse(response.content.decode())

    return get
