"""Helpers of `benchmarks/service_load.py`: the databases and the service under test (`system`),
the study history (`history`) and the client processes that generate the load (`clients`).

They use only the service's public surface: the `pbt-service` command, the gRPC API in
`pbt_service.api.v1`, and the database tables (the bulk history loader writes rows directly, and
checks through the API that the service reads them as intended).
"""
