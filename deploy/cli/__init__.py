"""The `sailo` command: run the whole system locally, mint development tokens, migrate, export contracts.

sailo dev                 PostgreSQL + broker (embedded unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS are
                          set) and the four services; Ctrl-C stops everything
sailo token --role ROLE   a bearer token from the local issuer (embedded default only)
sailo migrate             apply database migrations
sailo schemas             write the event contracts' JSON Schema into schemas/
sailo audit verify FILE --public-key PEM
                          verify an audit log dump (JSON lines, e.g. from kcat); exit 1 at the first fault
sailo audit verify --topic [--bootstrap-servers X] --public-key PEM
                          the same, reading the audit topic from its beginning to its current end
sailo audit export --out FILE
                          write the audit topic to FILE in that format
sailo audit public-key    print the checkpoint signing key's public key (PEM)
sailo apikey create --platform NAME [--rate N --burst N]
                          a platform's API key, printed once (DATABASE_URL as for `sailo migrate`)
sailo apikey list         every key: id, platform, limits, who made it when, revoked when
sailo apikey revoke KEYID revoke a key (running services refuse it within API_KEY_CACHE_SECONDS)
sailo loan fetch LOAN_ID --export-url URL --token TOKEN --out DIR [--progress]
                          an institute's download of its delivered loan: the package and, apart, its key;
                          unpacked into DIR and every recording checked against the manifest (exit 1 if not)

One module per command group; main.py holds the argument parser (every command, option and help text) and
main(), the console script's entry point:

    main.py        the parser and main()
    dev.py         sailo dev
    tokens.py      sailo token
    migrate.py     sailo migrate
    schemas.py     sailo schemas
    audit.py       sailo audit verify / export / public-key
    apikeys.py     sailo apikey create / list / revoke
    retention.py   sailo retention replan
    loans.py       sailo loan fetch (and fetch_loan, the download it runs)

Each command imports what it needs inside its function, so that `sailo token` does not load the database,
Kafka or HTTP clients.
"""
