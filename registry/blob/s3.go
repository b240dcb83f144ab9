package blob

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

const (
	defaultPartSize = 16 << 20
	minPartSize     = 5 << 20 // S3's minimum for all but the last part
	maxPartSize     = 5 << 30
	// maxSingleCopy is the largest object S3 copies in one request; MinIO
	// copies larger ones too, so bigger copies fall back to a multipart copy
	// only when the server refuses.
	maxSingleCopy  = 5 << 30
	defaultTimeout = 10 * time.Second
	// smallObject is how much of a stream of unknown size Put reads ahead
	// to find out whether it is small.
	smallObject = 1 << 20
	// s3MaxRetries bounds minio-go's retries (its default is 10, with
	// backoff, which keeps an unreachable endpoint busy for a long time).
	s3MaxRetries = 3
	// sha256Meta is the user metadata key (x-amz-meta-sha256) holding the
	// object's hex SHA-256.
	sha256Meta  = "sha256"
	contentType = "application/octet-stream"
	redacted    = "[REDACTED]"
)

// Environment variables the credentials fall back to, in this order.
const (
	accessKeyEnv    = "SLUICE_S3_ACCESS_KEY"
	accessKeyFile   = "SLUICE_S3_ACCESS_KEY_FILE" // a file holding it (a mounted Secret)
	awsAccessKeyEnv = "AWS_ACCESS_KEY_ID"
	secretKeyEnv    = "SLUICE_S3_SECRET_KEY"
	secretKeyFile   = "SLUICE_S3_SECRET_KEY_FILE"
	caFileEnv       = "SLUICE_S3_CA_FILE"
	awsSecretKeyEnv = "AWS_SECRET_ACCESS_KEY"
)

// S3Config configures an S3 store. Its String, GoString, LogValue and
// MarshalJSON/MarshalYAML methods redact the credentials, so a config can be
// printed, logged and dumped.
type S3Config struct {
	Endpoint string // host[:port], no scheme
	// AccessKey and SecretKey default to $SLUICE_S3_ACCESS_KEY and
	// $SLUICE_S3_SECRET_KEY, then to the contents of the files
	// $SLUICE_S3_ACCESS_KEY_FILE and $SLUICE_S3_SECRET_KEY_FILE (a mounted
	// Secret; trailing white space dropped), then to $AWS_ACCESS_KEY_ID and
	// $AWS_SECRET_ACCESS_KEY. Never flags: they stay out of process lists.
	AccessKey string
	SecretKey string
	Bucket    string
	Prefix    string // keys are <Prefix>/<key> in the bucket
	Region    string
	TLS       bool
	// CAFile is a PEM bundle of the CAs the endpoint's certificate is
	// checked against, for an endpoint whose certificate the system does
	// not trust (a MinIO with its own CA); default $SLUICE_S3_CA_FILE.
	// It implies TLS.
	CAFile   string
	PartSize int64 // multipart part size; default 16 MiB
	// Timeout bounds each metadata operation (Stat, List, Delete, bucket
	// setup, the wait for Get's first byte); default 10 s. Put and Copy move
	// data and are bounded by their ctx only.
	Timeout time.Duration

	credErr string // a credentials file that could not be read (resolve)
}

// Validate reports the first bad field, after applying defaults and the
// credentials' environment fallback.
func (c S3Config) Validate() error {
	return c.resolve(os.Getenv).validate()
}

// resolve fills defaults and credentials from getenv.
func (c S3Config) resolve(getenv func(string) string) S3Config {
	fromFile := func(env string) string {
		path := getenv(env)
		if path == "" {
			return ""
		}
		b, err := os.ReadFile(path)
		if err != nil {
			c.credErr = cmp.Or(c.credErr, fmt.Sprintf("s3 config: $%s: %v", env, err))
			return ""
		}
		return strings.TrimRight(string(b), " \t\r\n")
	}
	if c.AccessKey == "" {
		c.AccessKey = cmp.Or(getenv(accessKeyEnv), fromFile(accessKeyFile), getenv(awsAccessKeyEnv))
	}
	if c.SecretKey == "" {
		c.SecretKey = cmp.Or(getenv(secretKeyEnv), fromFile(secretKeyFile), getenv(awsSecretKeyEnv))
	}
	if c.CAFile == "" {
		c.CAFile = getenv(caFileEnv)
	}
	c.TLS = c.TLS || c.CAFile != ""
	c.Prefix = strings.Trim(c.Prefix, "/")
	if c.PartSize == 0 {
		c.PartSize = defaultPartSize
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout
	}
	return c
}

func (c S3Config) validate() error {
	switch {
	case c.credErr != "":
		return errors.New(c.credErr)
	case c.Endpoint == "":
		return errors.New("s3 config: endpoint is empty")
	case strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("s3 config: endpoint %q: want host[:port] without a scheme (TLS selects https)", c.Endpoint)
	case strings.ContainsAny(c.Endpoint, "/?#"):
		return fmt.Errorf("s3 config: endpoint %q: want host[:port] without a path", c.Endpoint)
	case c.AccessKey == "":
		return fmt.Errorf("s3 config: access key is empty (set AccessKey, $%s, $%s or $%s)", accessKeyEnv, accessKeyFile, awsAccessKeyEnv)
	case c.SecretKey == "":
		return fmt.Errorf("s3 config: secret key is empty (set SecretKey, $%s, $%s or $%s)", secretKeyEnv, secretKeyFile, awsSecretKeyEnv)
	case c.PartSize < minPartSize || c.PartSize > maxPartSize:
		return fmt.Errorf("s3 config: part size %d: want %d to %d bytes", c.PartSize, int64(minPartSize), int64(maxPartSize))
	case c.Timeout < 0:
		return fmt.Errorf("s3 config: timeout %s is negative", c.Timeout)
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return fmt.Errorf("s3 config: bucket %q: %w", c.Bucket, err)
	}
	if c.Prefix != "" {
		if err := validateKey(c.Prefix); err != nil {
			return fmt.Errorf("s3 config: prefix: %w", err)
		}
	}
	return nil
}

// String formats the config with its credentials redacted.
func (c S3Config) String() string {
	return fmt.Sprintf("S3Config{Endpoint:%q AccessKey:%s SecretKey:%s Bucket:%q Prefix:%q Region:%q TLS:%t PartSize:%d Timeout:%s}",
		c.Endpoint, redact(c.AccessKey), redact(c.SecretKey), c.Bucket, c.Prefix, c.Region, c.TLS, c.PartSize, c.Timeout)
}

// GoString keeps %#v from printing the credentials.
func (c S3Config) GoString() string { return c.String() }

// LogValue logs the config with its credentials redacted.
func (c S3Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("access_key", redact(c.AccessKey)),
		slog.String("secret_key", redact(c.SecretKey)),
		slog.String("bucket", c.Bucket),
		slog.String("prefix", c.Prefix),
		slog.String("region", c.Region),
		slog.Bool("tls", c.TLS),
		slog.String("ca_file", c.CAFile),
		slog.Int64("part_size", c.PartSize),
		slog.Duration("timeout", c.Timeout),
	)
}

// MarshalJSON encodes the config with its credentials redacted, so a
// config nested in a logged or dumped struct does not leak them either.
func (c S3Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(c.redacted())
}

// MarshalYAML is MarshalJSON for YAML encoders (gopkg.in/yaml.v3).
func (c S3Config) MarshalYAML() (any, error) {
	return c.redacted(), nil
}

// redactedS3Config has S3Config's fields and none of its methods.
type redactedS3Config S3Config

func (c S3Config) redacted() redactedS3Config {
	c.AccessKey = redact(c.AccessKey)
	c.SecretKey = redact(c.SecretKey)
	return redactedS3Config(c)
}

func redact(s string) string {
	if s == "" {
		return `""`
	}
	return redacted
}

// S3 is a Store on an S3-compatible object store (MinIO in production).
//
// Put streams through minio-go's PutObject in PartSize parts (one buffer of
// PartSize at a time), hashing the bytes as they pass, then records the
// SHA-256 as the object's x-amz-meta-sha256 metadata with a server-side
// self-copy that replaces only the metadata. Until that copy lands (or if a
// Put fails part-way through it) Stat reports the object with SHA256 "".
type S3 struct {
	client   *minio.Client
	endpoint string
	bucket   string
	prefix   string
	region   string
	partSize int64
	timeout  time.Duration
	log      *slog.Logger
}

var _ Store = (*S3)(nil)

// NewS3 connects to cfg.Endpoint and creates cfg.Bucket if it is missing,
// within cfg.Timeout. An unreachable endpoint fails with an error wrapping
// ErrUnavailable that names it. A nil log discards.
func NewS3(ctx context.Context, cfg S3Config, log *slog.Logger) (*S3, error) {
	cfg = cfg.resolve(os.Getenv)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     cfg.TLS,
		Region:     cfg.Region,
		MaxRetries: s3MaxRetries,
		// Lets Put send a full-object CRC32C as a trailer; see Put.
		TrailingHeaders: true,
	}
	if cfg.CAFile != "" {
		tr, err := trustingTransport(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		opts.Transport = tr
	}
	client, err := minio.New(cfg.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", cfg.Endpoint, err)
	}
	s := &S3{
		client:   client,
		endpoint: cfg.Endpoint,
		bucket:   cfg.Bucket,
		prefix:   cfg.Prefix,
		region:   cfg.Region,
		partSize: cfg.PartSize,
		timeout:  cfg.Timeout,
		log:      log.With("store", "s3", "endpoint", cfg.Endpoint, "bucket", cfg.Bucket),
	}
	if err := s.ensureBucket(ctx); err != nil {
		return nil, err
	}
	s.log.Info("s3 object store ready", "config", cfg)
	return s, nil
}

// trustingTransport is minio-go's default TLS transport trusting the CAs
// of caFile instead of the system's.
func trustingTransport(caFile string) (*http.Transport, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("s3 config: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3 config: CA file %s: no PEM certificate in it", caFile)
	}
	tr, err := minio.DefaultTransport(true)
	if err != nil {
		return nil, fmt.Errorf("s3 transport: %w", err)
	}
	tr.TLSClientConfig.RootCAs = pool
	return tr, nil
}

func (s *S3) ensureBucket(ctx context.Context) error {
	bctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	exists, err := s.client.BucketExists(bctx, s.bucket)
	if err != nil {
		return s.bucketErr(ctx, "check", err)
	}
	if exists {
		return nil
	}
	err = s.client.MakeBucket(bctx, s.bucket, minio.MakeBucketOptions{Region: s.region})
	if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
		return s.bucketErr(ctx, "create", err)
	}
	if err == nil {
		s.log.Info("created bucket")
	}
	return nil
}

func (s *S3) bucketErr(ctx context.Context, op string, err error) error {
	if ctx.Err() == nil && isUnavailable(err) {
		return fmt.Errorf("s3 %s: %s bucket %q: %w: %w", s.endpoint, op, s.bucket, ErrUnavailable, err)
	}
	return fmt.Errorf("s3 %s: %s bucket %q: %w", s.endpoint, op, s.bucket, err)
}

// Put streams r to key in PartSize parts, hashing it on the way.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	if err := validateKey(key); err != nil {
		return Info{}, err
	}
	name := s.object(key)
	start := time.Now()
	if size < 0 {
		var err error
		if r, size, err = peekSmall(r); err != nil {
			return Info{}, fmt.Errorf("s3 put %q: %w", key, err)
		}
	}
	h := sha256.New()
	sr := newSizedReader(r, size)
	if size == 0 {
		// minio-go never reads the reader of an empty object: check that it
		// is empty before the upload replaces what is stored.
		if _, err := sr.Read(make([]byte, 1)); err != io.EOF {
			return Info{}, fmt.Errorf("s3 put %q: %w", key, err)
		}
	}
	up, err := s.client.PutObject(ctx, s.bucket, name, io.TeeReader(sr, h), size, minio.PutObjectOptions{
		PartSize:    uint64(s.partSize),
		ContentType: contentType,
		// With a full-object checksum (and not without one) MinIO updates
		// the metadata below in place instead of rewriting every byte;
		// the server also verifies the CRC of what it received.
		Checksum: minio.ChecksumFullObjectCRC32C,
	})
	if errors.Is(sr.err, ErrSizeMismatch) {
		return Info{}, fmt.Errorf("s3 put %q: %w", key, sr.err)
	}
	if err != nil {
		return Info{}, s.wrap(ctx, "put", key, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))

	// The hash is known only now, after the bytes went up: record it with
	// a metadata-replacing self-copy, conditional on the ETag just written
	// so a concurrent Put of the same key is never stamped with our hash.
	stamped, err := s.copyObject(ctx,
		minio.CopyDestOptions{
			Bucket:          s.bucket,
			Object:          name,
			ReplaceMetadata: true,
			UserMetadata:    map[string]string{sha256Meta: sum},
			ContentType:     contentType,
		},
		minio.CopySrcOptions{Bucket: s.bucket, Object: name, MatchETag: up.ETag},
		sr.n)
	if err != nil {
		return Info{}, s.wrap(ctx, "put: record sha256 of", key, err)
	}
	elapsed := time.Since(start)
	s.log.DebugContext(ctx, "put object", "key", key, "size", sr.n, "sha256", sum,
		"elapsed", elapsed, "mb_per_s", float64(sr.n)/1e6/elapsed.Seconds())
	return Info{Key: key, Size: sr.n, SHA256: sum, Modified: stamped.LastModified}, nil
}

// peekSmall reads the head of a stream of unknown size. A stream that ends
// within smallObject bytes is returned with its size, to go up in one PUT
// instead of a multipart upload (which minio-go also gets wrong for an empty
// stream with a full-object checksum); otherwise size stays -1.
func peekSmall(r io.Reader) (io.Reader, int64, error) {
	head := make([]byte, smallObject)
	n, err := io.ReadFull(r, head)
	switch err {
	case nil:
		return io.MultiReader(bytes.NewReader(head), r), -1, nil
	case io.EOF, io.ErrUnexpectedEOF:
		return bytes.NewReader(head[:n]), int64(n), nil
	default:
		return nil, 0, err
	}
}

// Get streams key. Timeout bounds the wait for the response, not the read.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := validateKey(key); err != nil {
		return nil, Info{}, err
	}
	gctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(s.timeout, cancel)
	obj, err := s.client.GetObject(gctx, s.bucket, s.object(key), minio.GetObjectOptions{})
	var oi minio.ObjectInfo
	if err == nil {
		oi, err = obj.Stat() // sends the GET; the body is read later
	}
	switch fired := !timer.Stop(); {
	case fired && ctx.Err() == nil:
		err = fmt.Errorf("s3 get %q at %s: %w: no response within %s", key, s.endpoint, ErrUnavailable, s.timeout)
	case fired:
		err = fmt.Errorf("s3 get %q: %w", key, ctx.Err())
	case err != nil:
		err = s.wrap(ctx, "get", key, err)
	}
	if err != nil {
		if obj != nil {
			obj.Close()
		}
		cancel()
		return nil, Info{}, err
	}
	return &s3Reader{obj: obj, cancel: cancel}, s.info(key, oi), nil
}

// Stat describes key.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := validateKey(key); err != nil {
		return Info{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	oi, err := s.client.StatObject(sctx, s.bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.wrap(ctx, "stat", key, err)
	}
	return s.info(key, oi), nil
}

// Delete removes key; a missing key is not an error.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.client.RemoveObject(dctx, s.bucket, s.object(key), minio.RemoveObjectOptions{}); err != nil {
		return s.wrap(ctx, "delete", key, err)
	}
	return nil
}

// List returns the objects under prefix, sorted by key. Timeout bounds the
// whole listing.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel() // also stops minio-go's lister if we return early
	base := s.object("")
	infos := []Info{}
	for oi := range s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{
		Prefix:       base + prefix,
		Recursive:    true,
		WithMetadata: true, // MinIO lists user metadata, so the SHA-256
	}) {
		if oi.Err != nil {
			return nil, s.wrap(ctx, "list", prefix, oi.Err)
		}
		key := strings.TrimPrefix(oi.Key, base)
		if validateKey(key) != nil {
			continue // not written through a Store ("dir/" markers and such)
		}
		infos = append(infos, s.info(key, oi))
	}
	slices.SortFunc(infos, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return infos, nil
}

// Copy copies src to dst server-side, keeping src's metadata (its SHA-256).
func (s *S3) Copy(ctx context.Context, dst, src string) error {
	if err := validateKey(dst); err != nil {
		return err
	}
	if err := validateKey(src); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	oi, err := s.client.StatObject(sctx, s.bucket, s.object(src), minio.StatObjectOptions{})
	if err != nil {
		return s.wrap(ctx, "copy from", src, err)
	}
	if dst == src {
		return nil // S3 refuses to copy an object onto itself unchanged
	}
	_, err = s.copyObject(ctx,
		minio.CopyDestOptions{Bucket: s.bucket, Object: s.object(dst)},
		minio.CopySrcOptions{Bucket: s.bucket, Object: s.object(src), MatchETag: oi.ETag},
		oi.Size)
	if err != nil {
		return s.wrap(ctx, fmt.Sprintf("copy %q to", src), dst, err)
	}
	return nil
}

// copyObject copies in one request, or, for objects over S3's 5 GiB copy
// limit on a server that refuses the single request, as a multipart copy.
func (s *S3) copyObject(ctx context.Context, dst minio.CopyDestOptions, src minio.CopySrcOptions, size int64) (minio.UploadInfo, error) {
	info, err := s.client.CopyObject(ctx, dst, src)
	if err == nil || size <= maxSingleCopy {
		return info, err
	}
	if status := minio.ToErrorResponse(err).StatusCode; status < 400 || status >= 500 {
		return info, err
	}
	s.log.DebugContext(ctx, "single copy refused, copying in parts", "object", dst.Object, "size", size, "err", err)
	dst.PartSize = uint64(s.partSize)
	return s.client.ComposeObject(ctx, dst, src)
}

func (s *S3) object(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

func (s *S3) info(key string, oi minio.ObjectInfo) Info {
	return Info{Key: key, Size: oi.Size, SHA256: metaSHA256(oi.UserMetadata), Modified: oi.LastModified}
}

// metaSHA256 finds the recorded hash in user metadata, whose keys come back
// as "Sha256" from HEAD/GET and as "X-Amz-Meta-Sha256" from MinIO's listing.
func metaSHA256(meta map[string]string) string {
	for k, v := range meta {
		k = strings.ToLower(k)
		if k == sha256Meta || k == "x-amz-meta-"+sha256Meta {
			if v = strings.ToLower(strings.TrimSpace(v)); isHexSHA256(v) {
				return v
			}
		}
	}
	return ""
}

// wrap classifies a minio-go error: ErrNotFound for a missing key,
// ErrUnavailable for network failures, server-side outages and operation
// timeouts (not when the caller's ctx ended).
func (s *S3) wrap(ctx context.Context, op, key string, err error) error {
	if isNoSuchKey(err) {
		return fmt.Errorf("s3 %s %q: %w", op, key, ErrNotFound)
	}
	if ctx.Err() == nil && isUnavailable(err) {
		return fmt.Errorf("s3 %s %q at %s: %w: %w", op, key, s.endpoint, ErrUnavailable, err)
	}
	return fmt.Errorf("s3 %s %q: %w", op, key, err)
}

func isNoSuchKey(err error) bool {
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NotFound":
		return true
	case "NoSuchBucket":
		return false
	}
	return resp.StatusCode == http.StatusNotFound
}

func isUnavailable(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "SlowDown", "ServiceUnavailable", "ServerNotInitialized", "XMinioServerNotInitialized":
		return true
	}
	switch resp.StatusCode {
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// s3Reader is the stream Get returns; Close also releases its context.
type s3Reader struct {
	obj    *minio.Object
	cancel context.CancelFunc
}

func (r *s3Reader) Read(p []byte) (int, error) { return r.obj.Read(p) }

func (r *s3Reader) Close() error {
	err := r.obj.Close()
	r.cancel()
	return err
}
