"""The hosted cancel page (HTML and headless JSON) and its actions."""
