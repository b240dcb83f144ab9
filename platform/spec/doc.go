// Package spec defines Sluice applications and reads them from YAML.
//
// An application is a graph of deployments served under a route prefix;
// Kafka topics carry the graph's edges. Each YAML document declares one
// application, and a file may hold several, separated by "---":
//
//	name: hello                  # [A-Za-z0-9-], 1..63 chars, as are deployment and handler names
//	route_prefix: /hello         # URL path; /v2, /sluice, /ui and /metrics are reserved
//	ingress: Classifier          # the deployment that receives requests
//	partitions: 8                # partitions per topic, 1..1024 (default 8)
//	request_timeout: 30s         # deadline of sync requests, up to 10m (default 30s)
//	delivery: at_least_once      # or exactly_once: outputs and offsets in one transaction
//	deployments:
//	  - name: Classifier
//	    handler: Classifier      # handler registered in the binary (default: name)
//	    args:                    # constructor arguments, in order:
//	      - handle: Responder    #   a handle to another deployment, or
//	      - {threshold: 3}       #   any literal value, kept as JSON
//	    replicas: {min: 0, initial: 1, max: 4}   # max <= partitions; min 0 scales to zero
//	    max_ongoing_requests: 100                # 1..100000 (default 100)
//	    user_config: {threshold: 0.5}            # a mapping, kept as JSON
//	    resources: {cpu: 1, memory: 512MiB, gpu: 0.5, gpu_memory: 8GiB}
//	    batching: {max_batch_size: 16, batch_wait_timeout: 10ms}  # size 0: no batching
//	    max_models_per_replica: 3
//	    ordered: false           # handle a partition's records one at a time, in order
//	  - name: Responder
//	  - name: Combine
//	    join: {type: inner, window: 5s, trigger: [Responder]}  # more than one incoming edge: inner | outer | any
//	  - name: Shadow
//	edges:                       # dataflow: the output of from becomes the input of to
//	  - {from: Classifier, to: Responder}
//	  - {from: Classifier, to: Combine}
//	  - {from: Responder, to: Combine}
//	  - {from: Combine, to: Shadow, mirror: true}   # a copy whose answers never reach the caller
//
// Handle args and edges together must form an acyclic graph in which the
// ingress reaches every deployment. At deploy, App.CheckGraph checks that
// the dataflow gives one answer per request (joins on fan-in, no fan-out
// to several answers, no shadowed branch, mirrors kept apart), and
// App.NotServed refuses joins and mirrors on Python deployments, whose
// replicas do not run them yet.
//
// Parse decodes strictly (unknown fields, duplicate keys and wrong types
// are errors), applies defaults (App.Default) and validates (App.Validate),
// reporting every problem as an Errors list whose items carry the file,
// line, column and field path, such as
//
//	app.yaml:12:7: deployments[1].replicas.max: must be >= replicas.min (2), got 1
//
// Apps also travel as JSON, with Duration and Bytes written as strings such
// as "30s" and "8GiB"; json.Marshal and json.Unmarshal round-trip them.
package spec
