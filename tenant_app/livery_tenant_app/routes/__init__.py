"""HTTP routes of the tenant app: JSON API, pages, sign-in and operations endpoints."""
