"""The bank's rules: each call takes the acting Actor, checks it may act, and writes through the store."""
