"""Daily reports per party (docs/REPORTS.md): ``figures`` (every party's day, summed in SQL),
``detail`` (one party's report with its charts' series and, for a distributor, its retailers),
``render`` (words and CSV), ``charts`` (a PNG), ``morning`` (the worker's send each morning)."""
