"""What every page view shares: keeping rendered fragments, the page's assembly, response
headers."""
