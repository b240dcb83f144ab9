// Package keda renders the autoscaling policy of Sluice deployments as KEDA
// ScaledObjects (keda.sh/v1alpha1), for clusters that scale with KEDA
// rather than with the Sluice autoscaler: `sluice render` prints them.
//
// Each autoscaled deployment (replicas.min < replicas.max) gets one
// ScaledObject that scales its workload (the one the Kubernetes actuator
// would scale, named by the same template) with one kafka trigger per
// input topic of its consumer group. Fields map as closely as KEDA's model
// allows:
//
//	replicas.min, replicas.max      minReplicaCount, maxReplicaCount
//	poll_interval                   pollingInterval, rounded up to whole seconds
//	scale_to_zero_after             cooldownPeriod, rounded up to whole seconds
//	scale_up_delay                  HPA behavior scaleUp stabilizationWindowSeconds
//	scale_down_delay                HPA behavior scaleDown stabilizationWindowSeconds
//	target_lag_per_replica          lagThreshold, rounded to a whole number
//	activation_lag                  activationLagThreshold = activation_lag − 1
//	                                (KEDA wakes on lag > threshold, Sluice on lag ≥ activation_lag)
//
// idleReplicaCount is never set: KEDA allows only 0, below minReplicaCount,
// meaning "scale to zero although min is higher", which Sluice never does;
// a deployment with replicas.min 0 gets minReplicaCount 0 instead.
// replicas.initial has no KEDA field: it is the workload's own replicas.
// A deployment with replicas.min = replicas.max has a fixed size and gets
// no ScaledObject.
//
// What Sluice's policy does that KEDA cannot express is written in a
// comment at the top of each object, and the choices of trigger options
// beside them; see notes and comments below.
package keda

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/kube/workload"
	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/platform/spec"
)

// Options say where KEDA finds the brokers and the workloads.
type Options struct {
	Brokers   []string          // bootstrapServers of every trigger; required
	Namespace string            // metadata.namespace; "" leaves it to kubectl
	Workload  workload.Template // names each deployment's workload; zero: "{app}-{deployment}"
	Kind      workload.Kind     // the workloads' kind; "": Deployment
}

// maxWindow is the longest stabilization window the HPA accepts.
const maxWindow = time.Hour

// ScaledObject is a KEDA ScaledObject, with the fields Sluice sets.
type ScaledObject struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Metadata   Metadata `yaml:"metadata"`
	Spec       Spec     `yaml:"spec"`

	// Target is the Sluice deployment the object scales.
	Target autoscaler.Target `yaml:"-"`
	// Group and Inputs are its consumer group and input topics.
	Group  string   `yaml:"-"`
	Inputs []string `yaml:"-"`
	// Notes say what Sluice's own policy does that this object does not;
	// Write puts them in a comment at its top.
	Notes []string `yaml:"-"`
	// Comments explain single fields; Write puts each above its field.
	// Keys are paths such as "spec.pollingInterval" or
	// "spec.triggers.0.metadata.excludePersistentLag".
	Comments map[string]string `yaml:"-"`
}

// Metadata is the object's name and where it lives.
type Metadata struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace,omitempty"`
	Labels    map[string]string `yaml:"labels,omitempty"`
}

// Spec is a ScaledObject's spec.
type Spec struct {
	ScaleTargetRef  ScaleTargetRef `yaml:"scaleTargetRef"`
	PollingInterval int32          `yaml:"pollingInterval"`
	CooldownPeriod  int32          `yaml:"cooldownPeriod"`
	MinReplicaCount int32          `yaml:"minReplicaCount"`
	MaxReplicaCount int32          `yaml:"maxReplicaCount"`
	Advanced        Advanced       `yaml:"advanced"`
	Triggers        []Trigger      `yaml:"triggers"`
}

// ScaleTargetRef names the workload KEDA scales.
type ScaleTargetRef struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Name       string `yaml:"name"`
}

// Advanced holds the HPA that KEDA creates.
type Advanced struct {
	HorizontalPodAutoscalerConfig HPAConfig `yaml:"horizontalPodAutoscalerConfig"`
}

// HPAConfig configures the HPA that KEDA creates.
type HPAConfig struct {
	Behavior Behavior `yaml:"behavior"`
}

// Behavior is the HPA's autoscaling/v2 behavior.
type Behavior struct {
	ScaleUp   ScalingRules `yaml:"scaleUp"`
	ScaleDown ScalingRules `yaml:"scaleDown"`
}

// ScalingRules are the HPA's rules for one direction.
type ScalingRules struct {
	StabilizationWindowSeconds int32           `yaml:"stabilizationWindowSeconds"`
	Policies                   []ScalingPolicy `yaml:"policies"`
}

// ScalingPolicy limits how much the HPA changes in a period.
type ScalingPolicy struct {
	Type          string `yaml:"type"` // Pods or Percent
	Value         int32  `yaml:"value"`
	PeriodSeconds int32  `yaml:"periodSeconds"`
}

// Trigger is one kafka trigger.
type Trigger struct {
	Type     string        `yaml:"type"`
	Metadata KafkaMetadata `yaml:"metadata"`
}

// KafkaMetadata is the kafka scaler's metadata. KEDA reads every value as
// a string, so they are kept as strings (and quoted in YAML).
type KafkaMetadata struct {
	BootstrapServers         string `yaml:"bootstrapServers"`
	ConsumerGroup            string `yaml:"consumerGroup"`
	Topic                    string `yaml:"topic"`
	LagThreshold             string `yaml:"lagThreshold"`
	ActivationLagThreshold   string `yaml:"activationLagThreshold"`
	OffsetResetPolicy        string `yaml:"offsetResetPolicy"`
	AllowIdleConsumers       string `yaml:"allowIdleConsumers"`
	LimitToPartitionsWithLag string `yaml:"limitToPartitionsWithLag"`
	ExcludePersistentLag     string `yaml:"excludePersistentLag"`
}

// Skipped is a deployment that gets no ScaledObject, and why.
type Skipped struct {
	Target autoscaler.Target
	Reason string
}

// ScaledObjects maps the deployments of app, compiled to topo, to
// ScaledObjects. app must be defaulted and valid, as spec.Parse returns
// it. Deployments that do not autoscale are returned as Skipped.
func ScaledObjects(app *spec.App, topo *controller.Topology, opts Options) ([]ScaledObject, []Skipped, error) {
	if len(opts.Brokers) == 0 {
		return nil, nil, errors.New("keda: no brokers")
	}
	kind := opts.Kind
	if kind == "" {
		kind = workload.Deployment
	}
	var (
		objs    []ScaledObject
		skipped []Skipped
		names   = map[string]string{} // workload name → deployment
	)
	for _, d := range app.Deployments {
		t := autoscaler.Target{App: app.Name, Deployment: d.Name}
		if !d.Autoscales() {
			skipped = append(skipped, Skipped{t, fmt.Sprintf("replicas.min = replicas.max = %d, a fixed size: give its workload replicas: %d", d.Replicas.Min, d.Replicas.Min)})
			continue
		}
		dt, ok := topo.Deployments[d.Name]
		if !ok || len(dt.Inputs) == 0 {
			skipped = append(skipped, Skipped{t, "no input topic: nothing to scale on"})
			continue
		}
		name, err := opts.Workload.Name(app.Name, d.Name)
		if err != nil {
			return nil, nil, fmt.Errorf("keda: %w", err)
		}
		if other, dup := names[name]; dup {
			return nil, nil, fmt.Errorf("keda: deployments %s and %s of %s both map to workload %q: change --workload-template", other, d.Name, app.Name, name)
		}
		names[name] = d.Name
		objs = append(objs, scaledObject(t, d, dt, name, kind, opts))
	}
	return objs, skipped, nil
}

func scaledObject(t autoscaler.Target, d spec.Deployment, dt controller.DeploymentTopics, name string, kind workload.Kind, opts Options) ScaledObject {
	a := d.Autoscaling
	o := ScaledObject{
		APIVersion: "keda.sh/v1alpha1",
		Kind:       "ScaledObject",
		Metadata: Metadata{Name: name, Namespace: opts.Namespace, Labels: map[string]string{
			"app.kubernetes.io/part-of":    "sluice",
			"app.kubernetes.io/managed-by": "sluice-render",
		}},
		Target:   t,
		Group:    dt.Group,
		Inputs:   dt.Inputs,
		Comments: map[string]string{},
	}
	lag := max(1, int64(math.Round(a.TargetLagPerReplica)))
	up, upClamped := window(a.ScaleUpDelay)
	down, downClamped := window(a.ScaleDownDelay)
	o.Spec = Spec{
		ScaleTargetRef:  ScaleTargetRef{APIVersion: "apps/v1", Kind: string(kind), Name: name},
		PollingInterval: max(1, seconds(a.PollInterval)),
		CooldownPeriod:  seconds(a.ScaleToZeroAfter),
		MinReplicaCount: int32(d.Replicas.Min),
		MaxReplicaCount: int32(d.Replicas.Max),
		Advanced: Advanced{HorizontalPodAutoscalerConfig: HPAConfig{Behavior: Behavior{
			// No rate limit: Sluice goes to the size it wants in one step.
			ScaleUp: ScalingRules{StabilizationWindowSeconds: up,
				Policies: []ScalingPolicy{{Type: "Pods", Value: int32(d.Replicas.Max), PeriodSeconds: 1}}},
			ScaleDown: ScalingRules{StabilizationWindowSeconds: down,
				Policies: []ScalingPolicy{{Type: "Percent", Value: 100, PeriodSeconds: 1}}},
		}}},
	}
	for _, topic := range dt.Inputs {
		o.Spec.Triggers = append(o.Spec.Triggers, Trigger{Type: "kafka", Metadata: KafkaMetadata{
			BootstrapServers:         strings.Join(opts.Brokers, ","),
			ConsumerGroup:            dt.Group,
			Topic:                    topic,
			LagThreshold:             strconv.FormatInt(lag, 10),
			ActivationLagThreshold:   strconv.FormatInt(a.ActivationLag-1, 10),
			OffsetResetPolicy:        "earliest",
			AllowIdleConsumers:       "false",
			LimitToPartitionsWithLag: "false",
			ExcludePersistentLag:     "false",
		}})
	}

	c := o.Comments
	c["spec.pollingInterval"] = inSeconds("poll_interval", a.PollInterval, o.Spec.PollingInterval)
	c["spec.cooldownPeriod"] = inSeconds("scale_to_zero_after", a.ScaleToZeroAfter, o.Spec.CooldownPeriod) +
		"; KEDA applies it only to the last step, 1 to 0"
	c["spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.stabilizationWindowSeconds"] = windowComment("scale_up_delay", a.ScaleUpDelay, upClamped) +
		": as in Sluice, up to the least size asked over the window"
	c["spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds"] = windowComment("scale_down_delay", a.ScaleDownDelay, downClamped)
	c["spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.policies"] = "no rate limit, as in Sluice (the HPA's default: at most 4 pods or 100% per 15 s)"
	c["spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies"] = "down to the stable size in one step, as in Sluice"
	const tr = "spec.triggers.0.metadata."
	c[tr+"lagThreshold"] = fmt.Sprintf("target_lag_per_replica %v", a.TargetLagPerReplica)
	if float64(lag) != a.TargetLagPerReplica {
		c[tr+"lagThreshold"] += ", rounded: KEDA takes a whole number"
	}
	c[tr+"activationLagThreshold"] = fmt.Sprintf("activation_lag %d − 1: KEDA wakes on lag > threshold, Sluice on lag ≥ activation_lag", a.ActivationLag)
	c[tr+"offsetResetPolicy"] = "a group with no committed offset reads from the start, as Sluice replicas do, so all of the log is lag"
	c[tr+"allowIdleConsumers"] = "at most one replica per partition of the topic, as in Sluice without add_partitions"
	c[tr+"limitToPartitionsWithLag"] = "Sluice caps at the partitions, not at those with lag (lag counts requests in flight too)"
	c[tr+"excludePersistentLag"] = strings.Join([]string{
		"KEDA's partial answer to stuck lag: when true, the lag of a partition whose",
		"committed offset has not moved since the previous poll is left out of the",
		"replica count (not of activation). Off: a Sluice replica never stalls on a",
		"poison record (it dead-letters it), so an offset that stands still means a",
		"slow request or no replica, lag that must count. It would not cover records",
		"deleted by retention, nor a transaction marker's lag keeping a deployment",
		"from zero (activation still counts it).",
	}, "\n")

	o.Notes = notes(d, dt)
	return o
}

// notes lists what Sluice's policy for d does that KEDA cannot express.
func notes(d spec.Deployment, dt controller.DeploymentTopics) []string {
	a := d.Autoscaling
	n := []string{
		"Lag: KEDA counts log end minus committed offset, so records deleted by retention count " +
			"(kedacore/keda#4910) and a transaction marker after the last record leaves a lag of 1 " +
			"that never clears (#5675). Sluice counts from each partition's log start and counts " +
			"neither transaction markers nor aborted records.",
		fmt.Sprintf("Bursts: when the lag projected %v ahead at its growth rate asks for twice the ready "+
			"replicas, Sluice scales up at once to that, past scale_up_delay, and then does not scale "+
			"down for %v (its panic window). The HPA sizes on the lag it reads and always waits out "+
			"the scaleUp window.", autoscaler.Lookahead, autoscaler.PanicWindow),
		fmt.Sprintf("Timing: pollingInterval paces only KEDA's activation checks (0 to 1 replica and back). "+
			"Between 1 and max the HPA reads the lag at its own sync period (15 s by default, a "+
			"kube-controller-manager flag) and ignores changes within 10%% of the target (its tolerance). "+
			"Sluice reads the lag every poll_interval (%v) and acts on every read.", a.PollInterval),
	}
	if len(dt.Inputs) > 1 {
		n = append(n, fmt.Sprintf("Inputs: the HPA sizes each of the %d triggers (topics) on its own and takes the largest, "+
			"and KEDA wakes the deployment when any one topic's lag passes activationLagThreshold, and caps "+
			"each trigger at that topic's partitions. Sluice sums the lag of all inputs, against one target, "+
			"one activation_lag and their partitions together: with lag on several inputs at once KEDA asks "+
			"for fewer replicas.", len(dt.Inputs)))
	}
	if d.Replicas.Min == 0 {
		n = append(n, "Waking: Sluice wakes a deployment at zero on the first record sent to it, without waiting "+
			"for a poll; KEDA at its next poll that finds lag above activationLagThreshold.")
		if a.ActivationLag > 1 {
			n = append(n, fmt.Sprintf("To zero: Sluice goes to zero only with no lag and nothing in flight "+
				"for scale_to_zero_after; KEDA already when the lag stays below activation_lag (%d) for cooldownPeriod.", a.ActivationLag))
		}
	}
	if a.AddPartitions {
		n = append(n, "add_partitions: Sluice adds partitions to the input topics when demand asks for more "+
			"replicas than partitions; KEDA cannot, and caps replicas at the partitions.")
	}
	if a.TargetOngoingRequests > 0 {
		n = append(n, fmt.Sprintf("target_ongoing_requests %v: Sluice also asks for ceil(in flight / %v) "+
			"replicas, from what replicas report; KEDA sees only lag here.", a.TargetOngoingRequests, a.TargetOngoingRequests))
	}
	return n
}

// seconds rounds d up to whole seconds.
func seconds(d spec.Duration) int32 {
	s := (time.Duration(d) + time.Second - 1) / time.Second
	return int32(min(s, math.MaxInt32))
}

// window is d as an HPA stabilization window: whole seconds rounded up,
// at most an hour; clamped reports whether d was longer.
func window(d spec.Duration) (secs int32, clamped bool) {
	if time.Duration(d) > maxWindow {
		return seconds(spec.Duration(maxWindow)), true
	}
	return seconds(d), false
}

// inSeconds says which field a whole number of seconds comes from, and
// whether it was rounded.
func inSeconds(field string, d spec.Duration, secs int32) string {
	if time.Duration(d) == time.Duration(secs)*time.Second {
		return fmt.Sprintf("%s %v", field, d)
	}
	return fmt.Sprintf("%s %v, rounded up to %d s: KEDA counts whole seconds", field, d, secs)
}

func windowComment(field string, d spec.Duration, clamped bool) string {
	if clamped {
		return fmt.Sprintf("%s %v, cut to 3600 s: the HPA's longest window", field, d)
	}
	return inSeconds(field, d, seconds(d))
}

// Write writes a YAML stream: a comment naming the skipped deployments,
// then each object as a document, with its notes in a comment at its top
// and its comments above their fields.
func Write(w io.Writer, objs []ScaledObject, skipped []Skipped) error {
	var b strings.Builder
	if len(skipped) > 0 {
		b.WriteString("# No ScaledObject for these deployments:\n")
		for _, s := range skipped {
			fmt.Fprintf(&b, "#   %s: %s\n", s.Target, s.Reason)
		}
	}
	for _, o := range objs {
		doc, err := o.node()
		if err != nil {
			return fmt.Errorf("keda: %s: %w", o.Target, err)
		}
		if err := workload.WriteDoc(&b, doc); err != nil {
			return fmt.Errorf("keda: %s: %w", o.Target, err)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// node is o as a YAML document with its comments.
func (o ScaledObject) node() (*yaml.Node, error) {
	root := &yaml.Node{}
	if err := root.Encode(o); err != nil {
		return nil, err
	}
	for path, text := range o.Comments {
		key := lookup(root, strings.Split(path, "."))
		if key == nil {
			return nil, fmt.Errorf("comment on %s: no such field", path)
		}
		key.HeadComment = text
	}
	head := []string{
		fmt.Sprintf("Sluice deployment %s: consumer group %s, inputs %s.", o.Target, o.Group, strings.Join(o.Inputs, ", ")),
		"Sluice's own autoscaler does what this object cannot:",
	}
	for _, n := range o.Notes {
		head = append(head, wrap("- "+n, "  ", 76)...)
	}
	// On the root mapping rather than the document, so that no blank line
	// parts the comment from the object.
	root.HeadComment = strings.Join(head, "\n")
	return root, nil
}

// lookup finds the key node of path in a mapping (an index selects an
// item of a sequence).
func lookup(n *yaml.Node, path []string) *yaml.Node {
	for i, p := range path {
		switch n.Kind {
		case yaml.MappingNode:
			var next *yaml.Node
			for j := 0; j+1 < len(n.Content); j += 2 {
				if n.Content[j].Value == p {
					if i == len(path)-1 {
						return n.Content[j]
					}
					next = n.Content[j+1]
					break
				}
			}
			if next == nil {
				return nil
			}
			n = next
		case yaml.SequenceNode:
			k, err := strconv.Atoi(p)
			if err != nil || k < 0 || k >= len(n.Content) || i == len(path)-1 {
				return nil
			}
			n = n.Content[k]
		default:
			return nil
		}
	}
	return nil
}

// wrap breaks s into lines of at most width runes, the later ones indented.
func wrap(s, indent string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		switch {
		case line == "":
			line = w
		case len([]rune(line))+1+len([]rune(w)) > width:
			lines = append(lines, line)
			line = indent + w
		default:
			line += " " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
