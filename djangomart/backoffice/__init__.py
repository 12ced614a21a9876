"""The admin's front page: what needs a human today (docs/operations.md, "The admin's
front page"). No models; it reads the other apps' selectors."""
