"""The retrain pipeline's steps: one plain, typed function per file, unaware of where it runs."""
