"""`make bench`: the figures of issue 6, side by side with a naive pipeline; see bench/__main__.py."""
