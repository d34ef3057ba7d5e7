"""Data access shared by every task: image loading and readers of the official file formats."""
