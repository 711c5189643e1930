"""Settlement between levels of the chain (docs/REPORTS.md): ``figures`` (a pair's flows from the
ledger), ``documents`` (CSV and PDF, deterministic), ``runs`` (settle, show, list)."""
