"""Videos -> dataset rows: discover, plan, decode, run the network, convert, write; Ray actors and Prefect tasks."""
