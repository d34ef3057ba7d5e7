"""The evaluation layer: tasks (YAML + utils, ``tasks``), the runner that feeds their docs to an
adapter and keeps append-only predictions (``runner``), the one results.json writer
(``results``), the prediction formats `sc-eval score` reads (``predictions``), and the
classification datasets, features and predictions of the classifier adapters
(``classification``). It never imports the report or an adapter: adapters are handed to it."""
