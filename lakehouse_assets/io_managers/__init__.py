"""IO managers: one per store an asset can live in."""
