package main

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/executors"
)

// agentMetrics are the agent's own Prometheus metrics. They live in controller-runtime's
// metrics.Registry beside its reconcile and work-queue metrics (and its Go and process
// collectors), so /metrics serves one registry.
type agentMetrics struct {
	tasks          *prometheus.CounterVec
	taskDuration   *prometheus.HistogramVec
	requests       *prometheus.HistogramVec
	requestErrors  *prometheus.CounterVec
	registered     prometheus.GaugeFunc
	lastHeartbeat  prometheus.GaugeFunc
	journalDepth   prometheus.GaugeFunc
	journalErrors  prometheus.CounterFunc
	abandoned      prometheus.CounterFunc
	journalHealthy prometheus.GaugeFunc
	dropped        prometheus.CounterFunc
	outboxDepth    prometheus.GaugeFunc
	runningTasks   prometheus.GaugeFunc
	pendingTasks   prometheus.GaugeFunc
	failures       *prometheus.CounterVec
	buildInfo      prometheus.Gauge
	collectorsDone []prometheus.Collector
	knownTypes     map[string]bool
	log            logr.Logger
}

// unregisterJournal drops the journal's metrics (cluster mode has no journal).
func (m *agentMetrics) unregisterJournal() {
	metrics.Registry.Unregister(m.journalDepth)
	metrics.Registry.Unregister(m.journalErrors)
	metrics.Registry.Unregister(m.journalHealthy)
}

// newAgentMetrics registers the metrics; the gauges read a live agent.
func newAgentMetrics(a *agent, execs map[string]executors.Executor) *agentMetrics {
	m := &agentMetrics{
		knownTypes: make(map[string]bool, len(execs)),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "letsbe_agent_tasks_total",
			Help: "Tasks that reached a final status, by type and status (COMPLETED or FAILED).",
		}, []string{"type", "status"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "letsbe_agent_task_duration_seconds",
			Help:    "Time tasks spent executing, by type.",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60, 300, 900, 3600},
		}, []string{"type"}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "letsbe_agent_orchestrator_request_duration_seconds",
			Help:    "Latency of requests to the orchestrator, by endpoint and HTTP status (0: no answer). Long polls included.",
			Buckets: []float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 15, 30, 60},
		}, []string{"endpoint", "code"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "letsbe_agent_orchestrator_request_errors_total",
			Help: "Requests to the orchestrator that failed, by endpoint and HTTP status (0: no answer).",
		}, []string{"endpoint", "code"}),
		registered: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "letsbe_agent_registered",
			Help: "1 while the agent is registered with the orchestrator (0 before, and while a registration keeps failing).",
		}, func() float64 {
			if ok, _ := a.syncer.Registration(); ok {
				return 1
			}
			return 0
		}),
		lastHeartbeat: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "letsbe_agent_last_heartbeat_timestamp_seconds",
			Help: "Unix time of the last heartbeat the orchestrator accepted (0: none yet).",
		}, func() float64 {
			t := a.syncer.LastHeartbeat()
			if t.IsZero() {
				return 0
			}
			return float64(t.UnixNano()) / 1e9
		}),
		journalDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "letsbe_agent_journal_tasks",
			Help: "Tasks held in the durable journal: unfinished, or finished but not yet accepted by the orchestrator.",
		}, func() float64 { return float64(a.journal.Depth()) }),
		journalErrors: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "letsbe_agent_journal_write_errors_total",
			Help: "Task changes the journal could not write (the task was refused or failed, or its status was written again later).",
		}, func() float64 { return float64(a.journal.Failures()) }),
		abandoned: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "letsbe_agent_reports_abandoned_total",
			Help: "Final reports given up on: the orchestrator refused even the minimal report (the task's result is lost).",
		}, func() float64 { return float64(a.syncer.ReportsAbandoned()) }),
		journalHealthy: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "letsbe_agent_journal_healthy",
			Help: "1 while the journal can write (tasks are durable); 0 while it cannot (disk full, read-only, I/O error): the agent then takes no new tasks.",
		}, func() float64 {
			if a.journal.Healthy() != nil {
				return 0
			}
			return 1
		}),
		dropped: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "letsbe_agent_tasks_dropped_total",
			Help: "Tasks handed over without an id the agent can report under (missing, not valid UTF-8, a lone surrogate): dropped unreported.",
		}, func() float64 { return float64(a.syncer.TasksDropped()) }),
		outboxDepth: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "letsbe_agent_outbox_reports",
			Help: "Reports ready to be sent to the orchestrator right now (retries waiting for their backoff excluded).",
		}, func() float64 { return float64(a.syncer.OutboxDepth()) }),
		runningTasks: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "letsbe_agent_running_tasks",
			Help: "Tasks executing now.",
		}, func() float64 { return float64(len(a.registry.Running())) }),
		pendingTasks: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "letsbe_agent_tasks_pending",
			Help: "Tasks accepted and waiting for a worker (or a browser slot).",
		}, func() float64 { return float64(max(a.unfinished()-len(a.registry.Running()), 0)) }),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "letsbe_agent_task_failures_total",
			Help: "Tasks that ended FAILED, by type and the reason of their Ready condition (InvalidSpec, Refused, UnsupportedType, TimedOut, Cancelled, Interrupted, Panicked, Failed; Other for anything else).",
		}, []string{"type", "reason"}),
		buildInfo: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "letsbe_agent_build_info",
			Help:        "Always 1; the labels say which build runs.",
			ConstLabels: prometheus.Labels{"version": version, "commit": commitOrUnknown(), "go_version": runtime.Version()},
		}),
	}
	m.buildInfo.Set(1)
	for typ := range execs {
		m.knownTypes[typ] = true
	}
	m.collectorsDone = []prometheus.Collector{m.tasks, m.taskDuration, m.requests, m.requestErrors,
		m.registered, m.lastHeartbeat, m.journalDepth, m.journalErrors, m.journalHealthy, m.abandoned, m.dropped, m.outboxDepth, m.runningTasks,
		m.pendingTasks, m.failures, m.buildInfo, newStackCollector(a)}
	m.log = a.log
	for _, c := range m.collectorsDone {
		m.registerOne(c)
	}
	return m
}

// register adds collectors made before the agent (the journal's, which the journal needs at
// its opening); unregister removes them with the others.
func (m *agentMetrics) register(cs ...prometheus.Collector) {
	for _, c := range cs {
		m.registerOne(c)
		m.collectorsDone = append(m.collectorsDone, c)
	}
}

func (m *agentMetrics) registerOne(c prometheus.Collector) {
	// A second agent in one process (tests) replaces the first one's collectors.
	metrics.Registry.Unregister(c)
	if err := metrics.Registry.Register(c); err != nil {
		m.log.Error(err, "Cannot register a metric")
	}
}

// newJournalWriteHistogram is letsbe_agent_journal_write_seconds, fed by the journal's write
// observer: one observation per write transaction (its fsync included), failed ones too.
func newJournalWriteHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "letsbe_agent_journal_write_seconds",
		Help:    "Time each journal write transaction took, fsync included (one transaction carries every change waiting at once); memory mode only.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	})
}

// unregister removes the collectors (the agent stopped).
func (m *agentMetrics) unregister() {
	for _, c := range m.collectorsDone {
		metrics.Registry.Unregister(c)
	}
}

// observeTask counts a Task that reached a final status.
func (m *agentMetrics) observeTask(t *agentv1.Task, elapsed time.Duration) {
	status := "COMPLETED"
	if t.Status.Phase == agentv1.TaskFailed {
		status = "FAILED"
	}
	typ := t.Spec.Type
	if !m.knownTypes[typ] {
		typ = "unsupported" // types come from the orchestrator: keep the label set bounded
	}
	m.tasks.WithLabelValues(typ, status).Inc()
	if status == "FAILED" {
		m.failures.WithLabelValues(typ, failureReason(t)).Inc()
	}
	if elapsed > 0 {
		m.taskDuration.WithLabelValues(typ).Observe(elapsed.Seconds())
	}
}

// observeRequest records one orchestrator request.
func (m *agentMetrics) observeRequest(endpoint string, code int, elapsed time.Duration) {
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(endpoint, c).Observe(elapsed.Seconds())
	if code == 0 || code >= 400 {
		m.requestErrors.WithLabelValues(endpoint, c).Inc()
	}
}

// failureReasons are the reasons letsbe_agent_task_failures_total uses as label values; any
// other is counted as Other, so the label set stays bounded.
var failureReasons = map[string]bool{
	agentv1.ReasonFailed: true, agentv1.ReasonInvalidSpec: true, agentv1.ReasonUnsupportedType: true,
	agentv1.ReasonTimedOut: true, agentv1.ReasonCancelled: true, agentv1.ReasonInterrupted: true,
	agentv1.ReasonPanicked: true, agentv1.ReasonRefused: true,
}

// failureReason is the reason of a failed Task's Ready condition, bounded.
func failureReason(t *agentv1.Task) string {
	for _, c := range t.Status.Conditions {
		if c.Type == agentv1.ConditionReady {
			if failureReasons[c.Reason] {
				return c.Reason
			}
			break
		}
	}
	return "Other"
}

// keptMetric reports whether a metric family from the shared registry is served on /metrics:
// the agent's own, the Go runtime's and the process's, and of controller-runtime's only what
// says whether the work queues keep up and reconciles fail. The rest (reconcile and queue
// latency histograms per controller, REST client, webhook, certificate watcher, leader
// election internals) is dropped: it cost about 40% of every scrape and no alert uses it.
func keptMetric(name string) bool {
	switch {
	case strings.HasPrefix(name, "letsbe_agent_"), strings.HasPrefix(name, "go_"), strings.HasPrefix(name, "process_"):
		return true
	}
	switch name {
	case "workqueue_depth", "workqueue_adds_total", "workqueue_retries_total",
		"workqueue_longest_running_processor_seconds", "workqueue_unfinished_work_seconds",
		"controller_runtime_reconcile_total", "controller_runtime_reconcile_errors_total", "controller_runtime_reconcile_panics_total",
		"controller_runtime_terminal_reconcile_errors_total", "leader_election_master_status":
		return true
	}
	return false
}

// agentGatherer is the shared registry with only the kept metric families.
func agentGatherer() prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := metrics.Registry.Gather()
		kept := mfs[:0]
		for _, mf := range mfs {
			if keptMetric(mf.GetName()) {
				kept = append(kept, mf)
			}
		}
		return kept, err
	})
}

// stackCollector is letsbe_agent_stack_available: one sample per Stack, read from the Stack
// store at each scrape, 1 when every service of its revision was ready at the last
// observation (as the heartbeat's "available" says), else 0.
type stackCollector struct {
	a    *agent
	desc *prometheus.Desc
}

func newStackCollector(a *agent) *stackCollector {
	return &stackCollector{a: a, desc: prometheus.NewDesc("letsbe_agent_stack_available",
		"1 when every service of the deployed Compose project's last known good revision was ready at the agent's last look, else 0 (degraded, starting, or docker could not be asked).",
		[]string{"project"}, nil)}
}

// stackScrapeTimeout bounds the read of the Stacks for one scrape.
const stackScrapeTimeout = 5 * time.Second

func (c *stackCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stackCollector) Collect(ch chan<- prometheus.Metric) {
	if c.a.stacks == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stackScrapeTimeout)
	defer cancel()
	list, err := c.a.stacks.List(ctx)
	if err != nil {
		c.a.log.V(1).Info("Cannot read the stacks for the metrics", "error", err.Error())
		return
	}
	for i := range list.Items {
		st := &list.Items[i]
		v := 0.0
		if st.IsAvailable() && st.Status.ObservedGeneration == st.Generation {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, st.Spec.Project)
	}
}
