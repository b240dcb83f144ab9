package controller

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/platform/appstore"
	"github.com/sluice-serve/sluice/platform/spec"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/replicas/models"
	"github.com/sluice-serve/sluice/streams"
)

// AppStatus is what `sluice status` shows of one application.
type AppStatus struct {
	Name        string `json:"name"`
	RoutePrefix string `json:"route_prefix"`
	Ingress     string `json:"ingress"`
	// Generation is the applied spec's (the offset of its record).
	Generation  int64              `json:"generation"`
	Topics      []string           `json:"topics"`
	Deployments []DeploymentStatus `json:"deployments"`
	// Rejected is the latest spec written for the application and
	// refused, while the previous one keeps running.
	Rejected *appstore.Rejection `json:"rejected,omitempty"`
}

// DeploymentStatus is one deployment's state, from its replicas' reports.
type DeploymentStatus struct {
	Name    string `json:"name"`
	Handler string `json:"handler"`
	Group   string `json:"group"`
	// Revision is what the deployment's replicas should run; Updated
	// counts the ready replicas that run it, Outdated those that run
	// another (a roll in progress).
	Revision   string `json:"revision"`
	Updated    int    `json:"updated"`
	Outdated   int    `json:"outdated"`
	Replicas   int    `json:"replicas"`
	Target     int    `json:"target"`
	Partitions int    `json:"partitions_assigned"`
	Processed  int64  `json:"processed"`
	Failed     int64  `json:"failed"`
	Ongoing    int64  `json:"ongoing"`
	Lag        int64  `json:"lag"`
	// HandlerP99 is the slowest of the live replicas' reported p99 of
	// handler time (replicas.Report.HandlerP99: seconds over their last
	// five to ten seconds, -1 past the last bucket), a bound on the
	// deployment's own; 0 when no replica's handler ran then.
	HandlerP99 float64 `json:"handler_p99_seconds,omitempty"`
	// Mirrored: answers of mirrored copies dropped (replicas.Report);
	// JoinsFired, JoinsTimedOut, JoinLate: a join's counters.
	Mirrored      int64  `json:"mirrored,omitempty"`
	JoinsFired    int64  `json:"joins_fired,omitempty"`
	JoinsTimedOut int64  `json:"joins_timed_out,omitempty"`
	JoinLate      int64  `json:"join_late,omitempty"`
	Error         string `json:"error,omitempty"`
	// Reports are the live replicas' own reports.
	Reports []replicas.Report `json:"replica_reports,omitempty"`
	// Models is what each replica of a model deployment, or of a Python
	// deployment that multiplexes models, holds.
	Models []models.Report `json:"models,omitempty"`
	// Autoscaler is the autoscaler's view and its latest decisions.
	Autoscaler *autoscaler.Status `json:"autoscaler,omitempty"`
	// Placements is where each replica runs: node and GPU shares.
	Placements []placement.Replica `json:"placements,omitempty"`
}

// StatusConfig is what a Status view reads: all of it from Kafka (the
// apps and status topics, consumer groups), so every process that has
// one shows the same truth.
type StatusConfig struct {
	Namer      streams.Namer
	Store      *appstore.Store
	Replicas   *replicas.Reports
	Models     *models.Reports
	Scaling    func(autoscaler.Target) (autoscaler.Status, bool)
	Placements func(autoscaler.Target) []placement.Replica
	Log        *slog.Logger
}

// Status answers status questions about the applications.
type Status struct {
	cfg StatusConfig
	adm *kadm.Client
}

// NewStatus returns a view; lag is read through the store's client.
func NewStatus(cfg StatusConfig) *Status {
	return &Status{cfg: cfg, adm: kadm.NewClient(cfg.Store.Client())}
}

// Store is the application store the view reads.
func (s *Status) Store() *appstore.Store { return s.cfg.Store }

// Apps reports every application, with consumer-group lag read from the
// brokers (bounded by ctx; -1 where it could not be read).
func (s *Status) Apps(ctx context.Context) []AppStatus {
	var out []AppStatus
	var groups []string
	for _, a := range s.cfg.Store.Apps() {
		st := s.app(a)
		for _, d := range st.Deployments {
			groups = append(groups, d.Group)
		}
		out = append(out, st)
	}
	for _, rej := range s.cfg.Store.Rejections() {
		if _, ok := s.cfg.Store.App(rej.App); !ok {
			out = append(out, AppStatus{Name: rej.App, Generation: -1, Rejected: &rej})
		}
	}
	if len(groups) == 0 {
		return out
	}
	lags, err := s.adm.Lag(ctx, groups...)
	if err != nil {
		return out
	}
	for i := range out {
		for j := range out[i].Deployments {
			d := &out[i].Deployments[j]
			if l, ok := lags[d.Group]; ok && l.Error() == nil {
				d.Lag = l.Lag.Total()
			}
		}
	}
	return out
}

func (s *Status) app(a appstore.Applied) AppStatus {
	topo := Compile(s.cfg.Namer, a.Spec)
	st := AppStatus{Name: a.Spec.Name, RoutePrefix: a.Spec.RoutePrefix, Ingress: a.Spec.Ingress, Generation: a.Generation}
	if rej, ok := s.cfg.Store.Rejected(a.Spec.Name); ok {
		st.Rejected = &rej
	}
	for _, t := range topo.Topics() {
		st.Topics = append(st.Topics, t.Name)
	}
	for _, d := range a.Spec.Deployments {
		st.Deployments = append(st.Deployments, s.deployment(a.Spec, topo, d))
	}
	return st
}

func (s *Status) deployment(app *spec.App, topo *Topology, d spec.Deployment) DeploymentStatus {
	t := autoscaler.Target{App: app.Name, Deployment: d.Name}
	ds := DeploymentStatus{Name: d.Name, Handler: d.Handler, Group: topo.Deployments[d.Name].Group,
		Revision: Revision(topo, d), Target: d.Replicas.Initial, Lag: -1}
	if s.cfg.Replicas != nil {
		ds.Reports = s.cfg.Replicas.Deployment(app.Name, d.Name)
	}
	for _, r := range ds.Reports {
		ds.Replicas++
		ds.Processed += r.Processed
		ds.Failed += r.Failed
		ds.Ongoing += r.Ongoing
		ds.Mirrored += r.Mirrored
		ds.JoinsFired += r.JoinsFired
		ds.JoinsTimedOut += r.JoinsTimedOut
		ds.JoinLate += r.JoinLate
		ds.Partitions += r.Partitions
		if r.HandlerP99 < 0 || ds.HandlerP99 >= 0 && r.HandlerP99 > ds.HandlerP99 {
			ds.HandlerP99 = r.HandlerP99
		}
		switch {
		case r.Revision != ds.Revision:
			ds.Outdated++
		case r.Ready:
			ds.Updated++
		}
	}
	if s.cfg.Scaling != nil {
		if as, ok := s.cfg.Scaling(t); ok {
			ds.Autoscaler = &as
			ds.Target = as.Current
			ds.Error = as.Problem
		}
	}
	if s.cfg.Placements != nil {
		ds.Placements = s.cfg.Placements(t)
	}
	if s.cfg.Models != nil { // model deployments, and Python ones that multiplex models
		ds.Models = s.cfg.Models.Deployment(app.Name, d.Name)
	}
	return ds
}

// Outdated reports whether a live replica of app runs a revision its
// deployment no longer has (a roll not finished).
func (s *Status) Outdated(app string) bool {
	a, ok := s.cfg.Store.App(app)
	if !ok || s.cfg.Replicas == nil {
		return false
	}
	topo := Compile(s.cfg.Namer, a.Spec)
	for _, d := range a.Spec.Deployments {
		rev := Revision(topo, d)
		for _, r := range s.cfg.Replicas.Deployment(app, d.Name) {
			if r.Revision != rev {
				return true
			}
		}
	}
	return false
}

// Ready reports whether the application exists and each of its
// deployments that should run has a ready replica of its revision.
func (s *Status) Ready(app string) (exists, ready bool) {
	a, ok := s.cfg.Store.App(app)
	if !ok {
		return false, false
	}
	if s.cfg.Replicas == nil {
		return true, true
	}
	topo := Compile(s.cfg.Namer, a.Spec)
	for _, d := range a.Spec.Deployments {
		if d.Replicas.Min == 0 && d.Replicas.Initial == 0 {
			continue // woken by its first request
		}
		st := s.deployment(a.Spec, topo, d)
		if st.Updated == 0 {
			return true, false
		}
	}
	return true, true
}
