"""human3r package."""
