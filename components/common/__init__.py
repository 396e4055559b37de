"""Shared pieces every stage uses: attribute spec, Parquet schemas, table IO, manifests, sharding."""
