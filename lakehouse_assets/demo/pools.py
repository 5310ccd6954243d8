"""The live customers and products that new rows may reference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CustomerPool:
    """Live customers that new rows may reference, in order of creation."""

    ids: np.ndarray
    tenant_ids: np.ndarray
    created_us: np.ndarray
    tenants: int

    def pick(
        self, rng: np.random.Generator, at_us: np.ndarray, anonymous_share: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """A customer that existed at each time (0 for none) and the tenant it belongs to."""
        n = len(at_us)
        known = np.searchsorted(self.created_us, at_us, side="right")
        index = np.minimum((rng.random(n) * known).astype(np.int64), max(len(self.ids) - 1, 0))
        chosen = (known > 0) & (rng.random(n) >= anonymous_share)
        random_tenants = rng.integers(1, self.tenants + 1, n)
        if not len(self.ids):
            return np.zeros(n, np.int64), random_tenants
        return (
            np.where(chosen, self.ids[index], 0),
            np.where(chosen, self.tenant_ids[index], random_tenants),
        )


@dataclass(frozen=True)
class ProductPool:
    """Live products grouped by tenant, with their current prices."""

    ids: np.ndarray
    price_cents: np.ndarray
    starts: np.ndarray  # starts[t]..starts[t + 1]: the products of tenant t

    def pick(
        self, rng: np.random.Generator, tenant_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A product of each tenant (0 when it has none) and its price."""
        start = self.starts[tenant_ids]
        count = self.starts[tenant_ids + 1] - start
        index = np.minimum(
            start + (rng.random(len(tenant_ids)) * count).astype(np.int64), len(self.ids) - 1
        )
        has = count > 0
        return np.where(has, self.ids[index], 0), np.where(has, self.price_cents[index], 0)
