package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/autoscaler"
	"github.com/sluice-serve/sluice/autoscaler/placement"
	"github.com/sluice-serve/sluice/registry"
	"github.com/sluice-serve/sluice/registry/blob"
	"github.com/sluice-serve/sluice/replicas"
	"github.com/sluice-serve/sluice/replicas/models"
	"github.com/sluice-serve/sluice/replicas/runtime/tensorflow"
	"github.com/sluice-serve/sluice/streams"
)

// runtimes are the model runtimes this binary has; TensorFlow loads only
// in a build with the `tensorflow` tag and says so otherwise.
func runtimes() models.Runtimes {
	return models.Runtimes{models.LinearFormat: models.Linear{}, tensorflow.Format: tensorflow.Runtime{}}
}

// s3Flags adds the flags that locate model weights in S3/MinIO.
func s3Flags(fs *flagSet) *blob.S3Config {
	s3 := &blob.S3Config{}
	fs.envStringVar(&s3.Endpoint, "s3-endpoint", "SLUICE_S3_ENDPOINT", "", "S3/MinIO endpoint host:port for model weights, credentials from SLUICE_S3_ACCESS_KEY and SLUICE_S3_SECRET_KEY (default: a local directory)")
	fs.StringVar(&s3.Bucket, "s3-bucket", "sluice-models", "bucket for model weights")
	fs.StringVar(&s3.Prefix, "s3-prefix", "", "key prefix inside the bucket")
	fs.BoolVar(&s3.TLS, "s3-tls", false, "use TLS to reach the S3 endpoint")
	fs.envStringVar(&s3.CAFile, "s3-ca-file", "SLUICE_S3_CA_FILE", "", "PEM bundle of the CAs the S3 endpoint's certificate is checked against (default: the system's); implies --s3-tls")
	return s3
}

// followRegistry opens the registry, applies its events until runCtx ends,
// and returns once it has caught up (bounded by ctx and 30 s), so that
// what it serves knows every model published before.
func followRegistry(ctx, runCtx context.Context, cfg registry.Config) (*registry.Registry, error) {
	reg, err := registry.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	go func() { _ = reg.Run(runCtx) }()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := reg.Sync(sctx); err != nil {
		return nil, err
	}
	return reg, nil
}

// followed is what the status topic tells: model replicas' reports, the
// autoscaler's statuses, the nodes and where replicas are placed.
type followed struct {
	replicas *replicas.Reports
	reports  *models.Reports
	statuses *autoscaler.Statuses
	nodes    *placement.Follower
}

// followStatus reads the status topic until ctx ends.
func followStatus(ctx context.Context, brokers []string, namer streams.Namer, env Env) (followed, error) {
	f := followed{replicas.NewReports(), models.NewReports(), autoscaler.NewStatuses(), placement.NewFollower()}
	apply := func(ctx context.Context, r *kgo.Record) {
		f.replicas.Apply(ctx, r)
		f.reports.Apply(ctx, r)
		f.statuses.Apply(ctx, r)
		f.nodes.Apply(ctx, r)
	}
	l, err := streams.OpenLog(ctx, streams.LogConfig{Brokers: brokers, Topic: namer.Status(), Apply: apply, Log: env.Log})
	if err != nil {
		return followed{}, err
	}
	go l.Run(ctx)
	return f, nil
}

// replicaModels is what a `sluice replica` of a model deployment serves
// from: a registry follower reading weights from S3/MinIO, and a cache
// directory.
func replicaModels(ctx context.Context, brokers []string, namer streams.Namer, s3 blob.S3Config, cacheDir string, env Env) (*models.Factory, func(), error) {
	s3 = withS3Env(s3, env)
	if s3.Endpoint == "" {
		return nil, nil, usageError("replica: a model deployment needs --s3-endpoint (or SLUICE_S3_ENDPOINT): where the registry keeps weights")
	}
	store, err := blob.NewS3(ctx, s3, env.Log)
	if err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	reg, err := followRegistry(ctx, runCtx, registry.Config{Brokers: brokers, Namer: namer, Store: store, Log: env.Log})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	tmp := ""
	if cacheDir == "" {
		if tmp, err = os.MkdirTemp("", "sluice-models-"); err != nil {
			cancel()
			return nil, nil, fmt.Errorf("model cache: %w", err)
		}
		cacheDir = tmp
	}
	f := &models.Factory{Brokers: brokers, Namer: namer, Catalog: reg, Runtimes: runtimes(), CacheDir: cacheDir, Log: env.Log}
	return f, func() {
		cancel()
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}, nil
}
