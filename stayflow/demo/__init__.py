"""``stayflow demo``: the whole product on a laptop, without a Stripe account.

One process runs the Stripe sandbox (its state kept in a file), stayflow on SQLite with its
in-process worker, a small business site whose Cancel links carry the snippet, and a
background generator that plays 90 days of subscribers through the real cancel flow while
the sandbox's clock moves, so attribution and reports show something true.
"""
