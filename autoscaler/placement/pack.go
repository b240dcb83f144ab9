package placement

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-serve/sluice/autoscaler"
)

// eps absorbs rounding in sums of fractions and cores (0.1 × 10 is not 1).
const eps = 1e-9

// Pack places the replicas that reqs ask for on nodes.
//
// Replicas of prev that are still requested, still match their need and
// still fit keep their ID, node and shares. The others take the lowest free
// IDs of their target and the best node (see fit.better), requests with the
// biggest needs first; those that fit nowhere are counted pending, with a
// reason. The same input gives the same Plan, whatever the order of nodes,
// reqs and prev. Of nodes (or requests) that share a name (or target), the
// first counts.
func Pack(nodes []Node, reqs []Request, prev []Replica) Plan {
	s := newState(nodes)
	reqs = requests(reqs)
	want := make(map[autoscaler.Target]Request, len(reqs))
	for _, r := range reqs {
		want[r.Target] = r
	}
	placed := make(map[autoscaler.Target]map[int]bool, len(reqs))
	var plan Plan
	add := func(n *node, r Replica) {
		r.Revision = want[r.Target].Revision
		n.add(r)
		if placed[r.Target] == nil {
			placed[r.Target] = map[int]bool{}
		}
		placed[r.Target][r.ID] = true
		plan.Replicas = append(plan.Replicas, r)
	}

	prev = slices.Clone(prev)
	slices.SortStableFunc(prev, compareReplicas)
	for _, r := range prev {
		req, ok := want[r.Target]
		if !ok || r.ID < 0 || r.ID >= req.Replicas || placed[r.Target][r.ID] {
			continue
		}
		if n := s.byName[r.Node]; n != nil && n.keeps(req.Need, r) {
			r.Shares = slices.Clone(r.Shares)
			add(n, r)
		}
	}

	for _, req := range reqs {
		for id := 0; id < req.Replicas; id++ {
			if placed[req.Target][id] {
				continue
			}
			f, ok := s.place(req)
			if !ok {
				break // what did not fit now fits no better for the next ID
			}
			add(f.node, Replica{Target: req.Target, ID: id, Node: f.node.Name,
				Shares: f.shares(req.Need), CPU: req.Need.cpu(), Memory: req.Need.memory()})
		}
		if n := req.Replicas - len(placed[req.Target]); n > 0 {
			plan.Pending = append(plan.Pending, Pending{Target: req.Target, Count: n})
		}
	}
	// Reasons speak of the final plan, so that packing it again says the same.
	for i, p := range plan.Pending {
		plan.Pending[i].Reason = s.reason(want[p.Target].Need)
	}

	slices.SortFunc(plan.Replicas, compareReplicas)
	slices.SortFunc(plan.Pending, func(a, b Pending) int { return compareTargets(a.Target, b.Target) })
	return plan
}

// ForNode returns the replicas of p on the named node, by target and ID.
func (p Plan) ForNode(name string) []Replica {
	var out []Replica
	for _, r := range p.Replicas {
		if r.Node == name {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, compareReplicas)
	return out
}

// Count returns how many replicas of t p places, and its pending ones
// (a zero Pending when none waits).
func (p Plan) Count(t autoscaler.Target) (placed int, pending Pending) {
	for _, r := range p.Replicas {
		if r.Target == t {
			placed++
		}
	}
	for _, q := range p.Pending {
		if q.Target == t {
			return placed, q
		}
	}
	return placed, Pending{}
}

// String says what n asks for, as in "gpu 0.5 and 8GiB GPU memory".
func (n Need) String() string {
	var parts []string
	switch k := n.whole(); {
	case k == 1:
		parts = append(parts, "1 whole GPU")
	case k > 1:
		parts = append(parts, strconv.Itoa(k)+" whole GPUs")
	case n.fraction():
		parts = append(parts, "gpu "+formatNumber(n.GPU))
	}
	if n.gpu() && n.GPUMemory > 0 {
		parts = append(parts, formatBytes(n.GPUMemory)+" GPU memory")
	}
	if c := n.cpu(); c > 0 {
		parts = append(parts, "cpu "+formatNumber(c))
	}
	if m := n.memory(); m > 0 {
		parts = append(parts, formatBytes(m)+" memory")
	}
	switch len(parts) {
	case 0:
		return "nothing"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func (n Need) fraction() bool { return n.GPU > 0 && n.GPU < 1 }

// whole is how many devices n takes whole: 0 for a fraction or none.
func (n Need) whole() int {
	if !(n.GPU >= 1) {
		return 0
	}
	return int(min(n.GPU, 1<<20)) // no node has more; keeps int() defined
}

func (n Need) gpu() bool { return n.fraction() || n.whole() > 0 }

// cpu and memory are what a replica of n is accounted on its node.
func (n Need) cpu() float64 {
	if n.CPU > 0 {
		return n.CPU
	}
	return 0
}

func (n Need) memory() int64 { return max(n.Memory, 0) }

// share is a replica's share of d for n.
func (n Need) share(d Device) Share {
	if !n.fraction() {
		return Share{UUID: d.UUID, Fraction: 1, Memory: d.Memory}
	}
	m := n.GPUMemory
	if m <= 0 {
		m = int64(n.GPU * float64(d.Memory))
	}
	return Share{UUID: d.UUID, Fraction: n.GPU, Memory: m}
}

// requests returns reqs with a target's first request only, less those of
// no replicas, biggest needs first.
func requests(reqs []Request) []Request {
	seen := make(map[autoscaler.Target]bool, len(reqs))
	var out []Request
	for _, r := range reqs {
		if !seen[r.Target] && r.Replicas > 0 {
			out = append(out, r)
		}
		seen[r.Target] = true
	}
	slices.SortFunc(out, func(a, b Request) int {
		return cmp.Or(
			cmp.Compare(b.Need.GPU, a.Need.GPU), // whole, then fractions, then none
			cmp.Compare(b.Need.GPUMemory, a.Need.GPUMemory),
			cmp.Compare(b.Need.CPU, a.Need.CPU),
			cmp.Compare(b.Need.Memory, a.Need.Memory),
			compareTargets(a.Target, b.Target))
	})
	return out
}

func compareTargets(a, b autoscaler.Target) int {
	return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Deployment, b.Deployment))
}

func compareReplicas(a, b Replica) int {
	return cmp.Or(compareTargets(a.Target, b.Target), cmp.Compare(a.ID, b.ID))
}

// state is what the replicas placed so far use of the nodes.
type state struct {
	nodes  []*node // by name
	byName map[string]*node
}

type node struct {
	Node
	devs   []*device // by UUID
	models map[string]bool
	cpu    float64 // cores used
	mem    int64   // bytes used
	count  map[autoscaler.Target]int
}

type device struct {
	Device
	used   float64 // fraction
	mem    int64   // bytes
	shares int
	whole  bool // one replica holds it all
}

func newState(nodes []Node) *state {
	s := &state{byName: make(map[string]*node, len(nodes))}
	for _, nd := range nodes {
		if s.byName[nd.Name] != nil {
			continue
		}
		n := &node{Node: nd, models: map[string]bool{}, count: map[autoscaler.Target]int{}}
		for _, d := range nd.Devices {
			if n.device(d.UUID) == nil {
				i, _ := slices.BinarySearchFunc(n.devs, d.UUID, func(e *device, id string) int { return cmp.Compare(e.UUID, id) })
				n.devs = slices.Insert(n.devs, i, &device{Device: d})
			}
		}
		for _, m := range nd.Models {
			n.models[m] = true
		}
		s.byName[nd.Name] = n
		s.nodes = append(s.nodes, n)
	}
	slices.SortFunc(s.nodes, func(a, b *node) int { return cmp.Compare(a.Name, b.Name) })
	return s
}

func (n *node) device(uuid string) *device {
	i, ok := slices.BinarySearchFunc(n.devs, uuid, func(d *device, id string) int { return cmp.Compare(d.UUID, id) })
	if !ok {
		return nil
	}
	return n.devs[i]
}

// hasRoom reports whether n's free cores and memory take need's.
func (n *node) hasRoom(need Need) bool {
	c, m := need.cpu(), need.memory()
	return (c == 0 || n.cpu+c <= n.CPU+eps) && (m == 0 || m <= n.Memory-n.mem)
}

// takes reports whether s fits beside the shares d has.
func (d *device) takes(s Share) bool {
	if s.Fraction >= 1 {
		return d.shares == 0
	}
	return !d.whole && d.used+s.Fraction <= 1+eps && s.Memory <= d.Memory-d.mem
}

func (n *node) add(r Replica) {
	n.cpu += r.CPU
	n.mem += r.Memory
	n.count[r.Target]++
	for _, s := range r.Shares {
		d := n.device(s.UUID)
		d.used += s.Fraction
		d.mem += s.Memory
		d.shares++
		d.whole = d.whole || s.Fraction >= 1
	}
}

// keeps reports whether r, a replica of an earlier plan on n, is what need
// asks for now and fits beside the replicas kept before it.
func (n *node) keeps(need Need, r Replica) bool {
	if r.CPU != need.cpu() || r.Memory != need.memory() || !n.hasRoom(need) {
		return false
	}
	shares := need.whole()
	if need.fraction() {
		shares = 1
	}
	if len(r.Shares) != shares {
		return false
	}
	for i, s := range r.Shares {
		d := n.device(s.UUID)
		if d == nil || s != need.share(d.Device) || d.Memory < need.GPUMemory || !d.takes(s) ||
			slices.ContainsFunc(r.Shares[:i], func(o Share) bool { return o.UUID == s.UUID }) {
			return false
		}
	}
	return true
}

// fit is where a new replica would go on a node.
type fit struct {
	node *node
	dev  *device // for a fraction
	// left is what the node or device keeps free after it, the smaller the
	// tighter: fraction then memory of the device for a fraction; devices
	// free for whole GPUs; less the free cores for no GPU.
	left   [2]float64
	cached bool // the node caches the model
	count  int  // replicas of the target on the node
}

// fit finds where on n a new replica of need goes: for a fraction the
// device it fills best, for whole GPUs the first free ones with enough
// memory (see shares).
func (n *node) fit(need Need) (fit, bool) {
	if !n.hasRoom(need) {
		return fit{}, false
	}
	f := fit{node: n}
	switch k := need.whole(); {
	case need.fraction():
		for _, d := range n.devs {
			s := need.share(d.Device)
			if !d.takes(s) {
				continue
			}
			left := [2]float64{1 - d.used - s.Fraction, float64(d.Memory - d.mem - s.Memory)}
			if f.dev == nil || compareLeft(left, f.left) < 0 {
				f.dev, f.left = d, left
			}
		}
		return f, f.dev != nil
	case k > 0:
		free, big := 0, 0
		for _, d := range n.devs {
			if d.shares == 0 {
				free++
				if d.Memory >= need.GPUMemory {
					big++
				}
			}
		}
		f.left[0] = float64(free - k)
		return f, big >= k
	}
	f.left[0] = -(n.CPU - n.cpu)
	return f, true
}

// shares are the shares of the devices a new replica of need takes at f.
func (f fit) shares(need Need) []Share {
	if f.dev != nil {
		return []Share{need.share(f.dev.Device)}
	}
	var out []Share
	for _, d := range f.node.devs {
		if len(out) < need.whole() && d.shares == 0 && d.Memory >= need.GPUMemory {
			out = append(out, need.share(d.Device))
		}
	}
	return out
}

// compareLeft orders what fits leave free, fractions (or cores) first; those
// within eps are equal.
func compareLeft(a, b [2]float64) int {
	if math.Abs(a[0]-b[0]) > eps {
		return cmp.Compare(a[0], b[0])
	}
	return cmp.Compare(a[1], b[1])
}

// place finds the best node for a new replica of req.
func (s *state) place(req Request) (fit, bool) {
	var best fit
	for _, n := range s.nodes {
		f, ok := n.fit(req.Need)
		if !ok {
			continue
		}
		f.cached, f.count = req.Model != "" && n.models[req.Model], n.count[req.Target]
		if best.node == nil || f.better(best) {
			best = f
		}
	}
	return best, best.node != nil
}

// better reports whether a new replica is better placed at f than at b: on
// a node that caches its model, then on one with fewer replicas of its
// target, then the tighter fit (fractions pack together, whole devices and
// nodes with the most free devices stay free), then by node name.
func (f fit) better(b fit) bool {
	if f.cached != b.cached {
		return f.cached
	}
	if f.count != b.count {
		return f.count < b.count
	}
	if c := compareLeft(f.left, b.left); c != 0 {
		return c < 0
	}
	return f.node.Name < b.node.Name
}

// reason says why a replica of need fits on no node, and what is closest.
func (s *state) reason(need Need) string {
	if len(s.nodes) == 0 {
		return "no node reports: start `sluice node`"
	}
	return strings.Join(strings.Fields("needs "+need.String()+": "+s.short(need)), " ")
}

// short says what no node has enough of for need: the GPU, then cores, then
// memory, then all of them at once.
func (s *state) short(need Need) string {
	gpu := Need{GPU: need.GPU, GPUMemory: need.GPUMemory}
	switch {
	case need.gpu() && !slices.ContainsFunc(s.nodes, func(n *node) bool { return len(n.devs) > 0 }):
		return s.noGPU()
	case need.fraction() && !s.any(gpu):
		return s.freestDevice()
	case need.whole() > 0 && !s.any(gpu):
		return s.freeDevices(need)
	case !s.any(Need{CPU: need.CPU}):
		n := s.freest(func(n *node) float64 { return n.CPU - n.cpu })
		return fmt.Sprintf("the freest node is %s with cpu %s free", n.Name, formatNumber(n.CPU-n.cpu))
	case !s.any(Need{Memory: need.Memory}):
		n := s.freest(func(n *node) float64 { return float64(n.Memory - n.mem) })
		return fmt.Sprintf("the freest node is %s with %s memory free", n.Name, formatBytes(n.Memory-n.mem))
	}
	var n *node
	for _, c := range s.nodes {
		if _, ok := c.fit(gpu); ok && (n == nil || c.CPU-c.cpu > n.CPU-n.cpu+eps) {
			n = c
		}
	}
	return fmt.Sprintf("no node has all of it free at once (%s has cpu %s and %s memory free)",
		n.Name, formatNumber(n.CPU-n.cpu), formatBytes(n.Memory-n.mem))
}

// any reports whether some node takes need as things are.
func (s *state) any(need Need) bool {
	return slices.ContainsFunc(s.nodes, func(n *node) bool { _, ok := n.fit(need); return ok })
}

// freest returns the node with the most of free, the first by name of those
// with as much.
func (s *state) freest(free func(*node) float64) *node {
	best := s.nodes[0]
	for _, n := range s.nodes[1:] {
		if free(n) > free(best)+eps {
			best = n
		}
	}
	return best
}

func (s *state) noGPU() string {
	var parts []string
	for i, n := range s.nodes {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(s.nodes)-i))
			break
		}
		parts = append(parts, n.Name+": "+cmp.Or(n.GPUProblem, "none reported"))
	}
	return "no node has a GPU (" + strings.Join(parts, "; ") + ")"
}

func (s *state) freestDevice() string {
	var bn *node
	var bd *device
	for _, n := range s.nodes {
		for _, d := range n.devs {
			if bd == nil || compareLeft([2]float64{bd.used, float64(bd.mem - bd.Memory)},
				[2]float64{d.used, float64(d.mem - d.Memory)}) > 0 {
				bn, bd = n, d
			}
		}
	}
	return fmt.Sprintf("the freest device is %s on %s with %s free and %s free memory",
		bd.UUID, bn.Name, formatNumber(1-bd.used), formatBytes(bd.Memory-bd.mem))
}

func (s *state) freeDevices(need Need) string {
	var best, largest *node // most free devices; largest device
	count, size := -1, int64(0)
	for _, n := range s.nodes {
		c := 0
		for _, d := range n.devs {
			if d.shares == 0 && d.Memory >= need.GPUMemory {
				c++
			}
			if largest == nil || d.Memory > size {
				largest, size = n, d.Memory
			}
		}
		if c > count {
			best, count = n, c
		}
	}
	what := "a free GPU"
	if k := need.whole(); k > 1 {
		what = strconv.Itoa(k) + " free GPUs"
	}
	if need.GPUMemory > 0 {
		what += " of " + formatBytes(need.GPUMemory)
	}
	has := fmt.Sprintf("%s has %d", best.Name, count)
	switch {
	case count == 0 && size < need.GPUMemory:
		has = fmt.Sprintf("the largest is %s, on %s", formatBytes(size), largest.Name)
	case count == 0:
		has = "all are in use"
	}
	return "no node has " + what + " (" + has + ")"
}

// formatNumber writes x with at most 3 decimals: 0.25, 2.
func formatNumber(x float64) string {
	x = math.Round(x*1000) / 1000
	if x == 0 {
		return "0" // not "-0"
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

// formatBytes writes b in binary units: 512MiB, 8GiB, 1.5TiB.
func formatBytes(b int64) string {
	const units = "KMGTPE"
	if b > -1024 && b < 1024 {
		return strconv.FormatInt(b, 10) + "B"
	}
	v, i := float64(b)/1024, 0
	for math.Abs(v) >= 1024 && i < len(units)-1 {
		v, i = v/1024, i+1
	}
	s := strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 2, 64), "0"), ".")
	return s + units[i:i+1] + "iB"
}
