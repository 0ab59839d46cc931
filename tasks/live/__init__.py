"""Live streams into the dataset: sessions of segments, a low-latency feed, cameras as Ray actors."""
