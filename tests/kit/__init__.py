"""The test suite's shared plumbing, each piece written once: manifests (:mod:`kit.manifest`),
ports and HTTP probes (:mod:`kit.net`), waiting and processes (:mod:`kit.wait`,
:mod:`kit.procs`), a running coordinator (:mod:`kit.coordinator`), CLI results
(:mod:`kit.cli`) and the link adapter scripts (:mod:`kit.links`). The per-area kits
(farmkit, fleetkit, ...) build on these and keep only what is theirs."""
