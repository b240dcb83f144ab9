package streams

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultPrefix is the prefix used when none is configured.
const DefaultPrefix = "sluice"

const (
	maxSegmentLen = 63  // longest prefix, app, deployment or instance name
	maxNameLen    = 249 // Kafka's topic name limit
)

// ErrNotSluiceName is wrapped by every Parse error: the string is not a topic
// or group name that this Namer would build.
var ErrNotSluiceName = errors.New("not a sluice topic or group name")

// Kind says which builder a name comes from.
type Kind uint8

// The zero Kind is invalid.
const (
	KindIngress        Kind = iota + 1 // <p>.app.<app>.in
	KindOutput                         // <p>.app.<app>.out
	KindDeadLetter                     // <p>.app.<app>.dlq
	KindEdge                           // <p>.app.<app>.edge.<from>.<to>
	KindReply                          // <p>.reply.<instance>
	KindApps                           // <p>.control.apps
	KindStatus                         // <p>.control.status
	KindRegistryEvents                 // <p>.registry.events
	KindGroup                          // <p>.app.<app>.dep.<deployment> (consumer group)
	KindAudit                          // <p>.control.audit
)

var kindNames = [...]string{
	KindIngress:        "ingress",
	KindOutput:         "output",
	KindDeadLetter:     "dead-letter",
	KindEdge:           "edge",
	KindReply:          "reply",
	KindApps:           "apps",
	KindStatus:         "status",
	KindRegistryEvents: "registry-events",
	KindGroup:          "group",
	KindAudit:          "audit",
}

func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Name is a parsed topic or group name. Only the fields used by Kind are set.
type Name struct {
	Kind       Kind
	App        string // ingress, output, dead-letter, edge, group
	From, To   string // edge
	Deployment string // group
	Instance   string // reply
}

// Namer builds and parses every topic and consumer-group name of one Sluice
// installation. The zero Namer uses DefaultPrefix.
type Namer struct{ prefix string }

// NewNamer returns a Namer for prefix; "" means DefaultPrefix.
// A non-empty prefix must pass ValidSegment.
func NewNamer(prefix string) (Namer, error) {
	if prefix == "" {
		return Namer{prefix: DefaultPrefix}, nil
	}
	if err := ValidSegment(prefix); err != nil {
		return Namer{}, fmt.Errorf("streams: prefix: %w", err)
	}
	return Namer{prefix: prefix}, nil
}

// Prefix returns the first segment of every name.
func (n Namer) Prefix() string {
	if n.prefix == "" {
		return DefaultPrefix
	}
	return n.prefix
}

// The builders do not validate their arguments; callers pass names that
// passed ValidSegment. Use Format to build with validation.

// Ingress returns the topic that receives an application's requests.
func (n Namer) Ingress(app string) string { return n.Prefix() + ".app." + app + ".in" }

// Output returns the topic an application writes its results to.
func (n Namer) Output(app string) string { return n.Prefix() + ".app." + app + ".out" }

// DeadLetter returns an application's dead-letter topic.
func (n Namer) DeadLetter(app string) string { return n.Prefix() + ".app." + app + ".dlq" }

// Edge returns the topic carrying messages from node from to node to of app.
func (n Namer) Edge(app, from, to string) string {
	return n.Prefix() + ".app." + app + ".edge." + from + "." + to
}

// Reply returns the reply topic of one gateway instance.
func (n Namer) Reply(instance string) string { return n.Prefix() + ".reply." + instance }

// Apps returns the compacted topic holding application specs.
func (n Namer) Apps() string { return n.Prefix() + ".control.apps" }

// Status returns the topic of replica and node status and autoscaler decisions.
func (n Namer) Status() string { return n.Prefix() + ".control.status" }

// Audit returns the topic of the admin actions: who did what to which
// object, and how it ended.
func (n Namer) Audit() string { return n.Prefix() + ".control.audit" }

// RegistryEvents returns the model registry's event topic.
func (n Namer) RegistryEvents() string { return n.Prefix() + ".registry.events" }

// Group returns the consumer group of one deployment of app.
func (n Namer) Group(app, deployment string) string {
	return n.Prefix() + ".app." + app + ".dep." + deployment
}

// Format builds the name for nm. It fails if nm.Kind is unknown, a field its
// kind uses is not a valid segment, a field its kind does not use is set, or
// the result is longer than Kafka allows. Parse(Format(nm)) returns nm.
func (n Namer) Format(nm Name) (string, error) {
	if err := check(nm); err != nil {
		return "", fmt.Errorf("streams: format %v name: %w", nm.Kind, err)
	}
	var s string
	switch nm.Kind {
	case KindIngress:
		s = n.Ingress(nm.App)
	case KindOutput:
		s = n.Output(nm.App)
	case KindDeadLetter:
		s = n.DeadLetter(nm.App)
	case KindEdge:
		s = n.Edge(nm.App, nm.From, nm.To)
	case KindReply:
		s = n.Reply(nm.Instance)
	case KindApps:
		s = n.Apps()
	case KindStatus:
		s = n.Status()
	case KindRegistryEvents:
		s = n.RegistryEvents()
	case KindAudit:
		s = n.Audit()
	case KindGroup:
		s = n.Group(nm.App, nm.Deployment)
	}
	if len(s) > maxNameLen {
		return "", fmt.Errorf("streams: format %v name %q: %d characters exceeds Kafka's limit of %d", nm.Kind, s, len(s), maxNameLen)
	}
	return s, nil
}

// Parse is the inverse of the builders and of Format. Any string that is not
// exactly one of their forms under this Namer's prefix gives an error wrapping
// ErrNotSluiceName.
func (n Namer) Parse(name string) (Name, error) {
	p := n.Prefix()
	if len(name) > maxNameLen || len(name) <= len(p) || name[:len(p)] != p || name[len(p)] != '.' {
		return Name{}, notSluice(name)
	}
	var buf [5]string // longest form after the prefix: app.<app>.edge.<from>.<to>
	segs := buf[:0]
	for rest := name[len(p)+1:]; ; {
		if len(segs) == len(buf) {
			return Name{}, notSluice(name)
		}
		seg, tail, more := strings.Cut(rest, ".")
		segs = append(segs, seg)
		if !more {
			break
		}
		rest = tail
	}

	var nm Name
	switch {
	case len(segs) == 2 && segs[0] == "reply":
		nm = Name{Kind: KindReply, Instance: segs[1]}
	case len(segs) == 2 && segs[0] == "control" && segs[1] == "apps":
		nm = Name{Kind: KindApps}
	case len(segs) == 2 && segs[0] == "control" && segs[1] == "status":
		nm = Name{Kind: KindStatus}
	case len(segs) == 2 && segs[0] == "control" && segs[1] == "audit":
		nm = Name{Kind: KindAudit}
	case len(segs) == 2 && segs[0] == "registry" && segs[1] == "events":
		nm = Name{Kind: KindRegistryEvents}
	case len(segs) < 3 || segs[0] != "app":
		return Name{}, notSluice(name)
	case len(segs) == 3 && segs[2] == "in":
		nm = Name{Kind: KindIngress, App: segs[1]}
	case len(segs) == 3 && segs[2] == "out":
		nm = Name{Kind: KindOutput, App: segs[1]}
	case len(segs) == 3 && segs[2] == "dlq":
		nm = Name{Kind: KindDeadLetter, App: segs[1]}
	case len(segs) == 4 && segs[2] == "dep":
		nm = Name{Kind: KindGroup, App: segs[1], Deployment: segs[3]}
	case len(segs) == 5 && segs[2] == "edge":
		nm = Name{Kind: KindEdge, App: segs[1], From: segs[3], To: segs[4]}
	default:
		return Name{}, notSluice(name)
	}
	if err := check(nm); err != nil {
		return Name{}, fmt.Errorf("streams: parse %q: %w: %v", name, ErrNotSluiceName, err)
	}
	return nm, nil
}

func notSluice(name string) error {
	return fmt.Errorf("streams: parse %q: %w", name, ErrNotSluiceName)
}

// check reports whether nm sets exactly the fields its kind uses, each a
// valid segment.
func check(nm Name) error {
	want := Name{Kind: nm.Kind}
	var err error
	switch nm.Kind {
	case KindIngress, KindOutput, KindDeadLetter:
		want.App = nm.App
		err = field("app", nm.App)
	case KindEdge:
		want.App, want.From, want.To = nm.App, nm.From, nm.To
		err = errors.Join(field("app", nm.App), field("from", nm.From), field("to", nm.To))
	case KindGroup:
		want.App, want.Deployment = nm.App, nm.Deployment
		err = errors.Join(field("app", nm.App), field("deployment", nm.Deployment))
	case KindReply:
		want.Instance = nm.Instance
		err = field("instance", nm.Instance)
	case KindApps, KindStatus, KindRegistryEvents, KindAudit:
	default:
		return errors.New("unknown kind")
	}
	if err != nil {
		return err
	}
	if nm != want {
		return fmt.Errorf("fields set that a %v name does not use: %+v", nm.Kind, nm)
	}
	return nil
}

func field(what, s string) error {
	if err := ValidSegment(s); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// ValidSegment reports whether s can be a prefix, app, deployment or instance
// name: 1 to 63 ASCII letters, digits and '-', not starting with '-'.
// Dots separate segments, and '_' is excluded because Kafka's metric names
// treat '.' and '_' alike.
func ValidSegment(s string) error {
	if len(s) < 1 || len(s) > maxSegmentLen {
		return fmt.Errorf("name %q: length %d is not in 1..%d", s, len(s), maxSegmentLen)
	}
	for i, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		case r == '-' && i == 0:
			return fmt.Errorf("name %q: character '-' at 0 is not allowed (must start with a letter or digit)", s)
		case r == '-':
		default:
			return fmt.Errorf("name %q: character %q at %d is not allowed (use letters, digits and '-')", s, r, i)
		}
	}
	return nil
}
