"""COCO captioning tasks (Karpathy test split; COCO val2014 captions files)."""
