"""The lab: experiment manager, reports, benchmarks. Built on the library; the library never imports it."""
