// Package manifest renders the Kubernetes workloads that run the replicas
// of Sluice deployments: one apps/v1 Deployment per deployment, named by
// the same template as the autoscaler's and KEDA's targets, whose pods run
// `sluice replica`, shaped like deploy/kubernetes/replica-example.yaml.
// `sluice render --workloads` prints them.
//
// A deployment's resources map to its container's:
//
//	cpu          requests.cpu, in millicores ("500m") or whole cores ("2")
//	memory       requests.memory and limits.memory ("4Gi", "512Mi", "8G", bytes)
//	gpu ≥ 1      limits nvidia.com/gpu: the NVIDIA device plugin's whole GPUs
//	gpu < 1      limits <shared resource>: "1", one time slice of a GPU, and
//	             env SLUICE_GPU_MEMORY_FRACTION = gpu, which keeps the
//	             TensorFlow runtime within its share of the GPU's memory
//	gpu_memory   nothing: Kubernetes does not schedule on device memory
//
// The package builds the YAML itself rather than from k8s.io/api, which
// would more than double the size of a sluice binary without the
// kubernetes build tag.
package manifest

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/kube/workload"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas/gpu"
)

const (
	// DefaultImage is the stock sluice image, built from deploy/Dockerfile.
	DefaultImage = "ghcr.io/sluice-serve/sluice:latest"
	// GPUResource is the NVIDIA device plugin's resource of whole GPUs.
	GPUResource = "nvidia.com/gpu"
	// DefaultGPUSharedResource is the resource the NVIDIA device plugin
	// gives time-sliced GPUs when its time-slicing config says
	// renameByDefault: true.
	DefaultGPUSharedResource = "nvidia.com/gpu.shared"
)

// Options say what the replicas run and where they find Kafka.
type Options struct {
	Brokers   []string          // --brokers of every replica; required
	Prefix    string            // --prefix of every replica; "" leaves it out (the default prefix)
	Namespace string            // metadata.namespace; "" leaves it to kubectl
	Workload  workload.Template // names each deployment's workload; zero: "{app}-{deployment}"
	Image     string            // the containers' image; "": DefaultImage
	// GPUSharedResource is the resource a replica asking for a fraction of
	// a GPU takes one of; "": DefaultGPUSharedResource.
	GPUSharedResource string
	// Pin gives each deployment's code as deployed (nil: the handlers of
	// the replicas' image). An image bundle's pods run its image, whose
	// entrypoint is the bundle's SDK binary; a go-binary bundle's run the
	// stock image, which fetches the binary (from the registry's S3
	// store: SLUICE_S3_* in the pod) and becomes it.
	Pin func(deployment string) *spec.BundlePin
	// Revision gives each deployment's revision (what its replicas run);
	// it goes into the pod template, so a change of the spec rolls the
	// pods as it rolls replica processes. Nil leaves it out.
	Revision func(deployment string) string
}

// RevisionAnnotation is the pod template annotation with the revision of
// the deployment the pods run.
const RevisionAnnotation = "sluice.dev/revision"

// Deployment is an apps/v1 Deployment, with the fields Sluice sets.
type Deployment struct {
	APIVersion string         `yaml:"apiVersion"`
	Kind       string         `yaml:"kind"`
	Metadata   Metadata       `yaml:"metadata"`
	Spec       DeploymentSpec `yaml:"spec"`

	// Target is the Sluice deployment whose replicas it runs.
	Target autoscaler.Target `yaml:"-"`
	// GPUFraction is the share of a GPU each replica asks for when below
	// 1 (one time slice of the shared resource), else 0.
	GPUFraction float64 `yaml:"-"`
	// Notes explain the object; Write puts them in a comment at its top.
	Notes []string `yaml:"-"`
}

// Metadata is an object's name, where it lives, and its labels.
type Metadata struct {
	Name        string            `yaml:"name,omitempty"`
	Namespace   string            `yaml:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// DeploymentSpec is a Deployment's spec.
type DeploymentSpec struct {
	Replicas                int32       `yaml:"replicas"`
	ProgressDeadlineSeconds int32       `yaml:"progressDeadlineSeconds"`
	Selector                Selector    `yaml:"selector"`
	Template                PodTemplate `yaml:"template"`
}

// Selector selects the Deployment's pods by label.
type Selector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

// PodTemplate is the pods' template.
type PodTemplate struct {
	Metadata Metadata `yaml:"metadata"`
	Spec     PodSpec  `yaml:"spec"`
}

// PodSpec is a pod's spec.
type PodSpec struct {
	TerminationGracePeriodSeconds int64              `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               PodSecurityContext `yaml:"securityContext"`
	Containers                    []Container        `yaml:"containers"`
}

// PodSecurityContext is a pod's securityContext.
type PodSecurityContext struct {
	RunAsNonRoot   bool           `yaml:"runAsNonRoot"`
	SeccompProfile SeccompProfile `yaml:"seccompProfile"`
}

// SeccompProfile is a pod's seccomp profile.
type SeccompProfile struct {
	Type string `yaml:"type"`
}

// Container is the one container of a replica's pod.
type Container struct {
	Name            string                   `yaml:"name"`
	Image           string                   `yaml:"image"`
	Command         []string                 `yaml:"command,flow,omitempty"`
	Args            []string                 `yaml:"args,flow,omitempty"`
	Env             []EnvVar                 `yaml:"env,omitempty"`
	Ports           []ContainerPort          `yaml:"ports,omitempty"`
	Resources       Resources                `yaml:"resources,omitempty"`
	SecurityContext ContainerSecurityContext `yaml:"securityContext"`
}

// ContainerPort is a port a container listens on.
type ContainerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int32  `yaml:"containerPort"`
}

// MetricsPort is where a replica's pod serves its /metrics (the port
// named "metrics", which the chart's PodMonitor scrapes): the replica
// process's --metrics-addr, through SLUICE_METRICS_ADDR.
const MetricsPort = 9464

// EnvVar is a variable of a container's environment.
type EnvVar struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// Resources are a container's requests and limits, as Kubernetes
// quantities.
type Resources struct {
	Requests map[string]string `yaml:"requests,omitempty"`
	Limits   map[string]string `yaml:"limits,omitempty"`
}

// ContainerSecurityContext is a container's securityContext.
type ContainerSecurityContext struct {
	AllowPrivilegeEscalation bool         `yaml:"allowPrivilegeEscalation"`
	Capabilities             Capabilities `yaml:"capabilities"`
}

// Capabilities are a container's Linux capabilities.
type Capabilities struct {
	Drop []string `yaml:"drop,flow"`
}

// Deployments renders a Deployment for each deployment of app. app must be
// defaulted and valid, as spec.Parse returns it.
func Deployments(app *spec.App, opts Options) ([]Deployment, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("manifest: no brokers")
	}
	if opts.Image == "" {
		opts.Image = DefaultImage
	}
	if opts.GPUSharedResource == "" {
		opts.GPUSharedResource = DefaultGPUSharedResource
	}
	var (
		out   []Deployment
		names = map[string]string{} // workload name → deployment
	)
	for _, d := range app.Deployments {
		name, err := opts.Workload.Name(app.Name, d.Name)
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		if other, dup := names[name]; dup {
			return nil, fmt.Errorf("manifest: deployments %s and %s of %s both map to workload %q: change --workload-template", other, d.Name, app.Name, name)
		}
		names[name] = d.Name
		out = append(out, deployment(autoscaler.Target{App: app.Name, Deployment: d.Name}, d, name, opts))
	}
	return out, nil
}

func deployment(t autoscaler.Target, d spec.Deployment, name string, opts Options) Deployment {
	selector := map[string]string{"app.kubernetes.io/name": name}
	labels := map[string]string{
		"app.kubernetes.io/name":      name,
		"app.kubernetes.io/part-of":   "sluice",
		"app.kubernetes.io/component": "replica",
	}
	meta := Metadata{Name: name, Namespace: opts.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "sluice-render"}}
	maps.Copy(meta.Labels, labels)
	command := []string{"sluice", "replica", "--app", t.App, "--deployment", t.Deployment, "--brokers", strings.Join(opts.Brokers, ",")}
	if opts.Prefix != "" {
		command = append(command, "--prefix", opts.Prefix)
	}
	c := Container{
		Name:    "replica",
		Image:   opts.Image,
		Command: command,
		Env:     []EnvVar{{Name: "SLUICE_METRICS_ADDR", Value: "0.0.0.0:" + strconv.Itoa(MetricsPort)}},
		Ports:   []ContainerPort{{Name: "metrics", ContainerPort: MetricsPort}},
		SecurityContext: ContainerSecurityContext{
			Capabilities: Capabilities{Drop: []string{"ALL"}},
		},
	}
	var pin *spec.BundlePin
	if opts.Pin != nil {
		pin = opts.Pin(t.Deployment)
	}
	switch {
	case pin != nil && pin.Image != "":
		c.Image, c.Command, c.Args = pin.Image, nil, command[1:] // the image's entrypoint is the bundle's binary
	case pin != nil:
		c.Command = append(c.Command, "--code-cache", "/tmp/sluice/code")
	}
	o := Deployment{
		APIVersion: "apps/v1",
		Kind:       "Deployment",
		Metadata:   meta,
		Target:     t,
		Spec: DeploymentSpec{
			Replicas: int32(d.Replicas.Initial),
			// Pods that never become ready are reported to the autoscaler
			// once this passes; the API's default, 600 s, is too long.
			ProgressDeadlineSeconds: 120,
			Selector:                Selector{MatchLabels: selector},
			Template: PodTemplate{
				Metadata: Metadata{Labels: labels},
				Spec: PodSpec{
					// A replica drains when stopped: it finishes what it
					// has in flight, commits and leaves the group.
					TerminationGracePeriodSeconds: 30,
					SecurityContext: PodSecurityContext{
						RunAsNonRoot:   true,
						SeccompProfile: SeccompProfile{Type: "RuntimeDefault"},
					},
				},
			},
		},
	}
	if opts.Revision != nil {
		o.Spec.Template.Metadata.Annotations = map[string]string{RevisionAnnotation: opts.Revision(t.Deployment)}
	}
	o.Notes = append(o.Notes, fmt.Sprintf("The replicas of Sluice deployment %s: each pod is one member of its consumer group.", t))
	switch {
	case pin != nil && pin.Image != "":
		o.Notes = append(o.Notes, fmt.Sprintf("Code: bundle %s@%s, the image %s (its entrypoint is the bundle's SDK binary).", pin.Name, pin.Version, pin.Image))
	case pin != nil:
		o.Notes = append(o.Notes, fmt.Sprintf("Code: bundle %s@%s (sha256 %s), fetched from the registry's S3 store at start: give the pods SLUICE_S3_ENDPOINT and credentials (a Secret).", pin.Name, pin.Version, pin.SHA256))
	}
	if d.Autoscales() {
		o.Notes = append(o.Notes, fmt.Sprintf("replicas: replicas.initial (%d). The autoscaler (or KEDA) owns it once this "+
			"exists: re-apply without it, or kubectl resets the size it chose.", d.Replicas.Initial))
	} else {
		o.Notes = append(o.Notes, fmt.Sprintf("replicas: replicas.min = replicas.max = %d, a fixed size.", d.Replicas.Min))
	}
	if d.Kind == spec.KindModel {
		o.Notes = append(o.Notes, "A model deployment: its replicas read weights from S3; add SLUICE_S3_ENDPOINT "+
			"to the container's env, and SLUICE_S3_ACCESS_KEY and SLUICE_S3_SECRET_KEY from a Secret.")
	}

	r := d.Resources
	res := Resources{Requests: map[string]string{}, Limits: map[string]string{}}
	if r.CPU > 0 {
		res.Requests["cpu"] = cpuQuantity(r.CPU)
	}
	if r.Memory > 0 {
		q := memoryQuantity(r.Memory)
		res.Requests["memory"], res.Limits["memory"] = q, q
	}
	switch {
	case r.GPU >= 1:
		res.Limits[GPUResource] = strconv.FormatInt(int64(r.GPU), 10)
	case r.GPU > 0:
		fraction := strconv.FormatFloat(r.GPU, 'f', -1, 64)
		res.Limits[opts.GPUSharedResource] = "1"
		c.Env = append(c.Env, EnvVar{Name: gpu.EnvMemoryFraction, Value: fraction})
		o.GPUFraction = r.GPU
		o.Notes = append(o.Notes, fmt.Sprintf("GPU: %s of a GPU, as one time slice of %s: %s Time slices share the GPU's "+
			"memory unguarded; %s=%s keeps the TensorFlow runtime within its share.",
			fraction, opts.GPUSharedResource, slicesAdvice(r.GPU), gpu.EnvMemoryFraction, fraction))
	}
	if r.GPUMemory > 0 {
		o.Notes = append(o.Notes, fmt.Sprintf("gpu_memory %v: Kubernetes does not schedule on GPU memory; "+
			"keep these pods to nodes whose GPUs have at least %v each.", r.GPUMemory, deviceMemory(r)))
	}
	if len(res.Requests) == 0 {
		res.Requests = nil
	}
	if len(res.Limits) == 0 {
		res.Limits = nil
	}
	c.Resources = res
	o.Spec.Template.Spec.Containers = []Container{c}
	return o
}

// deviceMemory is the least memory a GPU needs for a replica to have
// r.GPUMemory of it: all of it for whole GPUs, else that over the share,
// rounded up to MiB.
func deviceMemory(r spec.Resources) spec.Bytes {
	if r.GPU >= 1 {
		return r.GPUMemory
	}
	const mib = 1 << 20
	return spec.Bytes(math.Ceil(float64(r.GPUMemory)/r.GPU/mib)) * mib
}

// timeSlices is how many slices of a GPU give each at least fraction of it.
func timeSlices(fraction float64) int {
	return int(math.Floor(1/fraction + 1e-9))
}

// slicesAdvice says how to configure the device plugin for replicas that
// each take fraction of a GPU.
func slicesAdvice(fraction float64) string {
	n := timeSlices(fraction)
	if math.Abs(float64(n)*fraction-1) < 1e-9 {
		return fmt.Sprintf("configure the device plugin's time-slicing with replicas: %d.", n)
	}
	return fmt.Sprintf("configure the device plugin's time-slicing with replicas: %d "+
		"(1/%v is not whole: each replica then has 1/%d of a GPU, more than it asks for).",
		n, strconv.FormatFloat(fraction, 'f', -1, 64), n)
}

// cpuQuantity is a number of cores as a Kubernetes quantity: whole cores
// ("2") or millicores ("500m"), rounded up to a whole millicore as
// Kubernetes would.
func cpuQuantity(cores float64) string {
	m := cores * 1000
	if r := math.Round(m); math.Abs(m-r) < 1e-6 {
		m = r // 0.3 cores is 300m, not the 301m its float64 rounds up to
	} else {
		m = math.Ceil(m)
	}
	if milli := int64(m); milli%1000 != 0 {
		return strconv.FormatInt(milli, 10) + "m"
	}
	return strconv.FormatInt(int64(m)/1000, 10)
}

// memoryQuantity is a number of bytes as a Kubernetes quantity, in the
// largest unit that divides it (Gi, G, Mi, M, Ki, k), else in bytes.
func memoryQuantity(b spec.Bytes) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"Gi", 1 << 30}, {"G", 1e9}, {"Mi", 1 << 20}, {"M", 1e6}, {"Ki", 1 << 10}, {"k", 1e3}} {
		if int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Write writes the Deployments as a YAML stream, each with its notes in a
// comment at its top. When replicas on shared GPUs ask for different
// fractions, a comment first says how many time slices suit them all.
func Write(w io.Writer, ds []Deployment) error {
	var (
		b         strings.Builder
		shared    []string // "app/deployment fraction"
		fractions = map[float64]bool{}
		largest   float64
	)
	for _, d := range ds {
		if d.GPUFraction > 0 {
			shared = append(shared, fmt.Sprintf("%s %v", d.Target, d.GPUFraction))
			fractions[d.GPUFraction] = true
			largest = max(largest, d.GPUFraction)
		}
	}
	if len(fractions) > 1 {
		text := fmt.Sprintf("These deployments take time slices of GPUs with different fractions (%s). "+
			"The device plugin makes every slice of a resource the same: configure its replicas for the largest "+
			"fraction, replicas: %d, or a GPU may hold replicas whose memory fractions add up to more than all of it.",
			strings.Join(shared, ", "), timeSlices(largest))
		for _, l := range wrap(text, 76) {
			fmt.Fprintf(&b, "# %s\n", l)
		}
	}
	for _, d := range ds {
		root := &yaml.Node{}
		if err := root.Encode(d); err != nil {
			return fmt.Errorf("manifest: %s: %w", d.Target, err)
		}
		var head []string
		for _, n := range d.Notes {
			head = append(head, wrap(n, 76)...)
		}
		// On the root mapping rather than the document, so that no blank
		// line parts the comment from the object.
		root.HeadComment = strings.Join(head, "\n")
		if err := workload.WriteDoc(&b, root); err != nil {
			return fmt.Errorf("manifest: %s: %w", d.Target, err)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap breaks s into lines of at most width runes (a longer word stands
// alone).
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case len([]rune(line))+1+len([]rune(w)) > width:
			lines = append(lines, line)
			line = w
		default:
			line += " " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
