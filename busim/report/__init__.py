"""Rendering results: terminal tables, and the files a run writes."""
