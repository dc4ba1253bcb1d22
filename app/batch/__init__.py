"""`ideaforge batch`: idea lists in, a crash-safe, resumable imagefolder out; locally or on Ray."""
