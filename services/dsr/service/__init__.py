"""DSR's rules, one module per part of a request's life; each step takes the route's session and the Caller,
flushes and never commits, and refuses with ApiError naming the field.

- lifecycle: the lifecycle, the queue, identity, the search for the requester's contacts and the caseworker's
  decision on each, the time limit's extension, restriction and its lift.
- answers: the decision per register carried out, and the reply letter.
- rectification: what a caseworker's corrections may say, carried out on the record store.
- disclosures: the research loans an access reply names as recipients.
"""
