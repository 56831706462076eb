"""The shell that runs it all: the daemon loop, close worker, file and Kafka runs, commands."""
