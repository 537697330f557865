"""Data checks for `shotlab curate check`, one small module per detector.

Detectors take arrays (labels, embeddings, image statistics) with keyword-only options and
return `CheckResult`s in the cleanlab shape: per-sample `<name>_score` (higher = worse) and
`is_<name>_issue`. `run.run_checks` reads the store, runs them and writes the results back.
"""
