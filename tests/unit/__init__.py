"""unit tests: pure logic, no server, no subprocess of ours; seconds in all."""
