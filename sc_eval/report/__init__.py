"""Reports over run directories: the comparison table, its paired tests against a baseline, the
CSV and the plots (``build``: `sc-eval report`, the demo's last stage), and the LLaVA battery laid
out as the paper's Table 11 (``table11``)."""
