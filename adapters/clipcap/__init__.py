"""ClipCap captioning on a frozen encoder (`sc-eval caption`): mapper, model, decoding, training."""
