"""MME: yes/no question pairs per image, scored per category (acc + acc+) and summed."""
