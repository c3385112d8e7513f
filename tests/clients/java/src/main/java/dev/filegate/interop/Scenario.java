// The interop scenario of tests/clients/README.md for grpc-java: runs its checks
// in order against the gateway at FILEGATE_ADDR and prints `PASS <check>` or
// `FAIL <check>: <why>` for each; exits 0 only if every check passed.
package dev.filegate.interop;

import static dev.filegate.interop.OwnerClient.MIB;

import com.google.protobuf.Message;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import dev.filegate.v1.Document;
import dev.filegate.v1.Event;
import dev.filegate.v1.Fit;
import dev.filegate.v1.GetDocumentRequest;
import dev.filegate.v1.ListDocumentsRequest;
import dev.filegate.v1.ListDocumentsResponse;
import dev.filegate.v1.MetadataField;
import dev.filegate.v1.MetadataRequest;
import dev.filegate.v1.MetadataResponse;
import dev.filegate.v1.QueryUploadRequest;
import dev.filegate.v1.QueryUploadResponse;
import dev.filegate.v1.SignedUrlRequest;
import dev.filegate.v1.SignedUrlResponse;
import dev.filegate.v1.StartUploadRequest;
import dev.filegate.v1.StartUploadResponse;
import dev.filegate.v1.ThumbnailRequest;
import dev.filegate.v1.UploadRequest;
import dev.filegate.v1.UploadResponse;
import dev.filegate.v1.UploadSpec;
import dev.filegate.v1.WhoAmIRequest;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.Status.Code;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.protobuf.StatusProto;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import javax.imageio.ImageIO;

public final class Scenario {
    private static final int MAX_MESSAGE_BYTES = 8 * MIB;
    private static final Duration EVENT_WAIT = Duration.ofSeconds(30);
    private static final Duration KEEPALIVE_IDLE = Duration.ofSeconds(25);
    private static final Duration UPLOAD_DEADLINE = Duration.ofSeconds(2);
    private static final String UPLOAD_ACTION = "fp.upload";
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final HttpClient HTTP = HttpClient.newBuilder()
            .version(HttpClient.Version.HTTP_1_1).connectTimeout(OwnerClient.CALL_TIMEOUT).build();

    private final Config config;
    private final OwnerClient me;
    private final OwnerClient other;

    private byte[] matrixBytes;
    private List<UploadRequest> matrixMessages;
    private Document matrix;
    private String matrixUrl;
    private Document image;
    private Document resumed;
    private long lastEventId;

    private Scenario(Config config, ManagedChannel channel) {
        this.config = config;
        this.me = new OwnerClient(channel, config.token(), config.gzip());
        this.other = new OwnerClient(channel, config.otherToken(), config.gzip());
    }

    public static void main(String[] args) throws InterruptedException {
        Config config = Config.fromEnvironment();
        ManagedChannel channel = channelTo(config.addr()).build();
        boolean passed;
        try {
            passed = new Scenario(config, channel).runAll();
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
        System.exit(passed ? 0 : 1);
    }

    /** What the runner passes in the environment. */
    record Config(String addr, String token, String owner, String otherToken, String otherOwner, boolean gzip,
            boolean channelChecks) {
        static Config fromEnvironment() {
            String compression = required("FILEGATE_COMPRESSION");
            if (!compression.equals("identity") && !compression.equals("gzip")) {
                throw new IllegalArgumentException("FILEGATE_COMPRESSION must be identity or gzip: " + compression);
            }
            return new Config(required("FILEGATE_ADDR"), required("FILEGATE_TOKEN"), required("FILEGATE_OWNER"),
                    required("FILEGATE_OTHER_TOKEN"), required("FILEGATE_OTHER_OWNER"), compression.equals("gzip"),
                    "1".equals(System.getenv("FILEGATE_CHANNEL_CHECKS")));
        }

        private static String required(String name) {
            String value = System.getenv(name);
            if (value == null || value.isEmpty()) {
                throw new IllegalArgumentException(name + " is not set");
            }
            return value;
        }
    }

    private static NettyChannelBuilder channelTo(String addr) {
        return NettyChannelBuilder.forTarget(addr).usePlaintext().maxInboundMessageSize(MAX_MESSAGE_BYTES);
    }

    private interface Check {
        void run() throws Exception;
    }

    private record NamedCheck(String name, Check check) {}

    /** A check's expectation did not hold. */
    private static final class CheckFailed extends Exception {
        CheckFailed(String message) {
            super(message);
        }
    }

    private List<NamedCheck> checks() {
        List<NamedCheck> checks = new ArrayList<>(List.of(
                new NamedCheck("who_am_i", this::whoAmI),
                new NamedCheck("upload", this::upload),
                new NamedCheck("idempotent_retry", this::idempotentRetry),
                new NamedCheck("signed_url", this::signedUrl),
                new NamedCheck("thumbnail", this::thumbnail),
                new NamedCheck("metadata", this::metadata),
                new NamedCheck("paging", this::paging),
                new NamedCheck("other_owner", this::otherOwner),
                new NamedCheck("rich_error", this::richError),
                new NamedCheck("watch_events", this::watchEvents),
                new NamedCheck("resumed_upload", this::resumedUpload),
                new NamedCheck("ranged_read", this::rangedRead),
                new NamedCheck("delete", this::delete)));
        if (config.channelChecks()) {
            checks.add(new NamedCheck("keepalive", this::keepalive));
            checks.add(new NamedCheck("deadline", this::deadline));
            checks.add(new NamedCheck("large_metadata", this::largeMetadata));
        }
        return checks;
    }

    private boolean runAll() {
        boolean allPassed = true;
        for (NamedCheck check : checks()) {
            allPassed &= run(check);
        }
        return allPassed;
    }

    private static boolean run(NamedCheck check) {
        try {
            check.check().run();
        } catch (Exception failure) {
            System.out.println("FAIL " + check.name() + ": " + describe(failure));
            System.out.flush();
            return false;
        }
        System.out.println("PASS " + check.name());
        System.out.flush();
        return true;
    }

    private static String describe(Exception failure) {
        String why;
        if (failure instanceof CheckFailed) {
            why = failure.getMessage();
        } else if (failure instanceof StatusRuntimeException status) {
            why = status.getStatus().getCode() + ": " + status.getStatus().getDescription();
        } else {
            why = failure.toString();
        }
        return why.replaceAll("\\s+", " ");
    }

    // --- The checks, in order.

    private void whoAmI() throws CheckFailed {
        String owner = me.call().whoAmI(WhoAmIRequest.getDefaultInstance()).getOwner();
        expect(owner.equals(config.owner()), "WhoAmI names " + owner + ", expected " + config.owner());
        String otherOwner = other.call().whoAmI(WhoAmIRequest.getDefaultInstance()).getOwner();
        expect(otherOwner.equals(config.otherOwner()),
                "WhoAmI with the other token names " + otherOwner + ", expected " + config.otherOwner());
    }

    private void upload() throws Exception {
        byte[] data = randomBytes(5 * MIB + 12345);
        UploadSpec spec = UploadSpec.newBuilder()
                .setFilename("matrix.bin")
                .setSizeBytes(data.length)
                .setSha256(sha256(data))
                .setRequestId(UUID.randomUUID().toString())
                .build();
        List<UploadRequest> messages = uploadMessages(spec, data);
        Document document = me.upload(messages).getDocument();
        expectDocument(document, "matrix.bin", data);
        expect(document.getHandle().matches("[A-Za-z0-9]{20}"), "handle " + document.getHandle());
        matrixBytes = data;
        matrixMessages = messages;
        matrix = document;
    }

    private void idempotentRetry() throws Exception {
        requireMatrix();
        Document again = me.upload(matrixMessages).getDocument();
        expect(again.getId().equals(matrix.getId()),
                "the retry stored document " + again.getId() + ", the first " + matrix.getId());
        List<String> ids = ids(me.listAll(100));
        expect(ids.equals(List.of(matrix.getId())), "ListDocuments holds " + ids);
    }

    private void signedUrl() throws Exception {
        requireMatrix();
        SignedUrlResponse reply = me.call().signedUrl(signedUrlRequest(matrix));
        byte[] body = download(reply.getUrl());
        expect(Arrays.equals(body, matrixBytes), "downloaded " + body.length + " bytes that differ from the upload");
        Instant expires = Instant.ofEpochSecond(reply.getExpireTime().getSeconds(), reply.getExpireTime().getNanos());
        expect(expires.isAfter(Instant.now()), "expire_time " + expires + " is not in the future");
        matrixUrl = reply.getUrl();
    }

    private void thumbnail() throws Exception {
        byte[] png = gradientPng(64, 48);
        UploadSpec spec = UploadSpec.newBuilder().setFilename("image.png").setSizeBytes(png.length).build();
        image = me.upload(uploadMessages(spec, png)).getDocument();
        expectDocument(image, "image.png", png);
        ThumbnailRequest request = ThumbnailRequest.newBuilder()
                .setDocumentId(image.getId()).setWidth(32).setHeight(24).setFit(Fit.FIT_CROP).build();
        BufferedImage thumbnail = ImageIO.read(new ByteArrayInputStream(download(me.call().thumbnail(request).getUrl())));
        expect(thumbnail != null, "the thumbnail is not an image ImageIO decodes");
        expect(thumbnail.getWidth() == 32 && thumbnail.getHeight() == 24,
                "thumbnail is " + thumbnail.getWidth() + "x" + thumbnail.getHeight() + ", asked 32x24");
    }

    private void metadata() throws CheckFailed {
        requireMatrix();
        requireImage();
        MetadataResponse file = me.call().metadata(MetadataRequest.newBuilder()
                .setDocumentId(matrix.getId())
                .addFields(MetadataField.METADATA_FIELD_SIZE)
                .addFields(MetadataField.METADATA_FIELD_MIMETYPE)
                .addFields(MetadataField.METADATA_FIELD_FILENAME)
                .addFields(MetadataField.METADATA_FIELD_SHA256)
                .build());
        expect(file.hasSizeBytes() && file.getSizeBytes() == matrixBytes.length, "size in " + file);
        expect(file.getMimetype().equals("application/octet-stream"), "mimetype in " + file);
        expect(file.getFilename().equals("matrix.bin"), "filename in " + file);
        expect(file.getSha256().equals(sha256(matrixBytes)), "sha256 in " + file);
        MetadataResponse picture = me.call().metadata(MetadataRequest.newBuilder()
                .setDocumentId(image.getId())
                .addFields(MetadataField.METADATA_FIELD_WIDTH)
                .addFields(MetadataField.METADATA_FIELD_HEIGHT)
                .build());
        expect(picture.hasWidth() && picture.getWidth() == 64, "width in " + picture);
        expect(picture.hasHeight() && picture.getHeight() == 48, "height in " + picture);
    }

    private void paging() throws CheckFailed {
        requireMatrix();
        requireImage();
        ListDocumentsResponse onePage = me.call().listDocuments(ListDocumentsRequest.newBuilder().setPageSize(100).build());
        expect(onePage.getNextPageToken().isEmpty(), "a next page after every document");
        List<String> all = ids(onePage.getDocumentsList());
        List<String> paged = ids(me.listAll(1));
        expect(paged.equals(all), "pages of 1 give " + paged + ", one page gives " + all);
        List<String> expected = List.of(image.getId(), matrix.getId());
        expect(all.equals(expected), "listed " + all + ", expected image.png then matrix.bin " + expected);
    }

    private void otherOwner() throws Exception {
        requireMatrix();
        GetDocumentRequest get = GetDocumentRequest.newBuilder().setDocumentId(matrix.getId()).build();
        Map<String, Check> calls = new LinkedHashMap<>();
        calls.put("GetDocument", () -> other.call().getDocument(get));
        calls.put("SignedUrl", () -> other.call().signedUrl(signedUrlRequest(matrix)));
        calls.put("Delete", () -> other.delete(matrix));
        for (Map.Entry<String, Check> call : calls.entrySet()) {
            String what = call.getKey() + " with the other token";
            ErrorInfo info = errorInfo(expectStatus(Code.PERMISSION_DENIED, what, call.getValue()));
            expect(info.getReason().equals("NOT_DOCUMENT_OWNER"), what + ": ErrorInfo reason " + info.getReason());
        }
        Document still = me.call().getDocument(get).getDocument();
        expect(still.getId().equals(matrix.getId()), "the owner's GetDocument gives " + still.getId());
    }

    private void richError() throws Exception {
        requireImage();
        ThumbnailRequest request = ThumbnailRequest.newBuilder()
                .setDocumentId(image.getId()).setWidth(0).setHeight(24).build();
        StatusRuntimeException error = expectStatus(Code.INVALID_ARGUMENT, "Thumbnail of width 0",
                () -> me.call().thumbnail(request));
        com.google.rpc.Status status = StatusProto.fromThrowable(error);
        expect(status != null, "no grpc-status-details-bin trailer");
        ErrorInfo info = detail(status, ErrorInfo.class)
                .orElseThrow(() -> new CheckFailed("no ErrorInfo in " + status));
        expect(info.getDomain().equals("filegate") && info.getReason().equals("INVALID_ARGUMENT"),
                "ErrorInfo " + info);
        BadRequest badRequest = detail(status, BadRequest.class)
                .orElseThrow(() -> new CheckFailed("no BadRequest in " + status));
        expect(badRequest.getFieldViolationsList().stream().anyMatch(v -> v.getField().equals("width")),
                "BadRequest names no field width: " + badRequest);
    }

    private void watchEvents() throws Exception {
        requireMatrix();
        requireImage();
        List<Event> uploads;
        try (OwnerClient.EventStream events = me.watch(0)) {
            uploads = awaitUploads(events, List.of(matrix.getHandle(), image.getHandle()));
        }
        Event first = uploads.get(0);
        Event second = uploads.get(1);
        try (OwnerClient.EventStream events = me.watch(first.getId())) {
            Event next = events.next(Instant.now().plus(EVENT_WAIT));
            expect(next != null, "no event after id " + first.getId() + " within " + EVENT_WAIT.toSeconds() + " s");
            expect(next.getId() == second.getId(),
                    "from id " + first.getId() + " came event " + next.getId() + ", expected " + second.getId());
        }
    }

    private void resumedUpload() throws Exception {
        byte[] data = randomBytes(8 * MIB + 1000);
        UploadSpec spec = UploadSpec.newBuilder()
                .setFilename("resumed.bin").setSizeBytes(data.length).setSha256(sha256(data)).build();
        StartUploadResponse started = me.call().startUpload(StartUploadRequest.newBuilder().setSpec(spec).build());
        String uploadId = started.getUploadId();
        int part = 8 * MIB;
        expect(!uploadId.isEmpty(), "StartUpload answered no upload_id");
        expect(started.getPartSizeBytes() == part, "part_size_bytes " + started.getPartSizeBytes());

        UploadResponse partial = me.upload(resumeMessages(uploadId, data, 0, part + 500));
        expect(!partial.hasDocument(), "a document before the whole file was sent");
        expect(partial.getPersistedBytes() == part, "the first stream persisted " + partial.getPersistedBytes());
        QueryUploadResponse query = queryUpload(me, uploadId);
        expect(query.getPersistedBytes() == part, "QueryUpload persisted_bytes " + query.getPersistedBytes());

        StatusRuntimeException refused = expectStatus(Code.OUT_OF_RANGE, "a stream resuming at offset 0",
                () -> me.upload(resumeMessages(uploadId, data, 0, data.length)));
        ErrorInfo info = errorInfo(refused);
        expect(info.getReason().equals("OFFSET_NOT_PERSISTED"), "ErrorInfo reason " + info.getReason());
        expect(String.valueOf(part).equals(info.getMetadataMap().get("persisted_bytes")),
                "ErrorInfo metadata " + info.getMetadataMap());

        Document document = me.upload(resumeMessages(uploadId, data, part, data.length)).getDocument();
        resumed = document;
        expectDocument(document, "resumed.bin", data);
        Document named = queryUpload(me, uploadId).getDocument();
        expect(named.getId().equals(document.getId()), "QueryUpload names document " + named.getId());
        expectStatus(Code.NOT_FOUND, "other owner's QueryUpload", () -> queryUpload(other, uploadId));
    }

    private void rangedRead() throws Exception {
        requireMatrix();
        int size = matrixBytes.length;
        OwnerClient.ReadResult whole = me.read(matrix.getId(), 0, 0);
        expect(Arrays.equals(whole.data(), matrixBytes), "the whole Read gave " + whole.data().length + " other bytes");
        expect(whole.messages() > 1, "the whole file came in " + whole.messages() + " message(s)");
        expect(whole.largestMessage() <= 2 * MIB, "a message of " + whole.largestMessage() + " bytes");

        int start = MIB + 3;
        OwnerClient.ReadResult range = me.read(matrix.getId(), start, 1000);
        expect(Arrays.equals(range.data(), Arrays.copyOfRange(matrixBytes, start, start + 1000)),
                "Read of 1000 bytes at " + start + " gave " + range.data().length + " other bytes");
        var span = range.first().getContentRange();
        expect(span.getStart() == start && span.getEnd() == start + 1000 && span.getCompleteLength() == size,
                "content_range " + span.getStart() + ".." + span.getEnd() + "/" + span.getCompleteLength());

        OwnerClient.ReadResult tail = me.read(matrix.getId(), -4321, 0);
        expect(Arrays.equals(tail.data(), Arrays.copyOfRange(matrixBytes, size - 4321, size)),
                "Read at -4321 gave " + tail.data().length + " other bytes");
    }

    private void delete() throws Exception {
        requireMatrix();
        expect(matrixUrl != null, "no signed URL: signed_url failed");
        for (Document document : new Document[] {matrix, image, resumed}) {
            if (document != null) {
                me.delete(document);
            }
        }
        List<String> left = ids(me.listAll(100));
        expect(left.isEmpty(), "ListDocuments still holds " + left);
        expectStatus(Code.NOT_FOUND, "GetDocument of the deleted matrix.bin",
                () -> me.call().getDocument(GetDocumentRequest.newBuilder().setDocumentId(matrix.getId()).build()));
        int status = get(matrixUrl).statusCode();
        expect(status == 404, "the deleted file's signed URL answered " + status);
    }

    private void keepalive() throws Exception {
        ManagedChannel channel = channelTo(config.addr())
                .keepAliveTime(10, TimeUnit.SECONDS)
                .keepAliveTimeout(5, TimeUnit.SECONDS)
                .keepAliveWithoutCalls(true)
                .build();
        OwnerClient client = new OwnerClient(channel, config.token(), config.gzip());
        try (OwnerClient.EventStream events = client.watch(lastEventId)) {
            Thread.sleep(KEEPALIVE_IDLE.toMillis());
            byte[] data = randomBytes(1000);
            UploadSpec spec = UploadSpec.newBuilder().setFilename("keepalive.bin").setSizeBytes(data.length).build();
            Document document = client.upload(uploadMessages(spec, data)).getDocument();
            try {
                expectDocument(document, "keepalive.bin", data);
                awaitUploads(events, List.of(document.getHandle()));
            } finally {
                client.delete(document);
            }
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private void deadline() throws Exception {
        byte[] data = randomBytes(4 * MIB);
        UploadSpec spec = UploadSpec.newBuilder()
                .setFilename("deadline.bin").setSizeBytes(data.length).setRequestId(UUID.randomUUID().toString()).build();
        OwnerClient.UploadCall stalled = me.startUpload(UPLOAD_DEADLINE);
        stalled.send(OwnerClient.specMessage(spec));
        OwnerClient.chunks(data, 0, MIB).forEach(stalled::send);
        expectStatus(Code.DEADLINE_EXCEEDED, "an Upload that stops sending", stalled::result);
        List<String> stored = ids(me.listAll(100));
        expect(stored.isEmpty(), "ListDocuments holds " + stored + " after the stalled upload");

        Document document = me.upload(uploadMessages(spec, data)).getDocument();
        try {
            expectDocument(document, "deadline.bin", data);
        } finally {
            me.delete(document);
        }
    }

    private void largeMetadata() throws CheckFailed {
        Metadata padding = new Metadata();
        padding.put(Metadata.Key.of("x-filegate-padding", Metadata.ASCII_STRING_MARSHALLER), letters(8192));
        String owner = me.callWith(padding).whoAmI(WhoAmIRequest.getDefaultInstance()).getOwner();
        expect(owner.equals(config.owner()), "WhoAmI names " + owner);
    }

    // --- Helpers of the checks.

    private void requireMatrix() throws CheckFailed {
        expect(matrix != null, "no matrix.bin document: upload failed");
    }

    private void requireImage() throws CheckFailed {
        expect(image != null, "no image.png document: thumbnail failed");
    }

    private void expectDocument(Document document, String filename, byte[] data) throws CheckFailed {
        expect(!document.getId().isEmpty(), "the document has no id");
        expect(document.getFilename().equals(filename), "filename " + document.getFilename() + ", sent " + filename);
        expect(document.getSizeBytes() == data.length, "size " + document.getSizeBytes() + ", sent " + data.length);
        expect(document.getSha256().equals(sha256(data)), "sha256 " + document.getSha256() + ", sent " + sha256(data));
        expect(document.getOwner().equals(config.owner()), "owner " + document.getOwner());
    }

    /**
     * Reads events until an fp.upload came for every handle, within EVENT_WAIT;
     * returns those events in the order they came.
     */
    private List<Event> awaitUploads(OwnerClient.EventStream events, List<String> handles) throws Exception {
        Instant until = Instant.now().plus(EVENT_WAIT);
        Set<String> missing = new HashSet<>(handles);
        List<Event> uploads = new ArrayList<>();
        while (!missing.isEmpty()) {
            Event event = events.next(until);
            expect(event != null, "no fp.upload event for " + missing + " within " + EVENT_WAIT.toSeconds() + " s");
            lastEventId = Math.max(lastEventId, event.getId());
            if (event.getAction().equals(UPLOAD_ACTION) && missing.remove(event.getHandle())) {
                uploads.add(event);
            }
        }
        return uploads;
    }

    private static List<UploadRequest> uploadMessages(UploadSpec spec, byte[] data) {
        List<UploadRequest> messages = new ArrayList<>();
        messages.add(OwnerClient.specMessage(spec));
        messages.addAll(OwnerClient.chunks(data, 0, data.length));
        return messages;
    }

    /** A stream continuing upload `uploadId` with `data[from, to)`; the first message names the upload. */
    private static List<UploadRequest> resumeMessages(String uploadId, byte[] data, int from, int to) {
        List<UploadRequest> messages = new ArrayList<>(OwnerClient.chunks(data, from, to));
        UploadRequest.Builder first = messages.isEmpty() ? UploadRequest.newBuilder() : messages.get(0).toBuilder();
        UploadRequest named = first.setUploadId(uploadId).setWriteOffset(from).build();
        if (messages.isEmpty()) {
            messages.add(named);
        } else {
            messages.set(0, named);
        }
        return messages;
    }

    private static QueryUploadResponse queryUpload(OwnerClient client, String uploadId) {
        return client.call().queryUpload(QueryUploadRequest.newBuilder().setUploadId(uploadId).build());
    }

    private static SignedUrlRequest signedUrlRequest(Document document) {
        return SignedUrlRequest.newBuilder().setDocumentId(document.getId()).build();
    }

    private static ErrorInfo errorInfo(StatusRuntimeException error) throws CheckFailed {
        com.google.rpc.Status status = StatusProto.fromThrowable(error);
        expect(status != null, "no grpc-status-details-bin trailer");
        return detail(status, ErrorInfo.class).orElseThrow(() -> new CheckFailed("no ErrorInfo in " + status));
    }

    private static <T extends Message> Optional<T> detail(com.google.rpc.Status status, Class<T> type)
            throws CheckFailed {
        for (com.google.protobuf.Any any : status.getDetailsList()) {
            if (any.is(type)) {
                try {
                    return Optional.of(any.unpack(type));
                } catch (com.google.protobuf.InvalidProtocolBufferException broken) {
                    throw new CheckFailed("undecodable " + any.getTypeUrl() + ": " + broken.getMessage());
                }
            }
        }
        return Optional.empty();
    }

    /** Runs `call`, which must fail with `code`; returns its error. */
    private static StatusRuntimeException expectStatus(Code code, String what, Check call) throws Exception {
        try {
            call.run();
        } catch (StatusRuntimeException error) {
            Code got = error.getStatus().getCode();
            expect(got == code, what + ": " + got + " (" + error.getStatus().getDescription() + "), expected " + code);
            return error;
        }
        throw new CheckFailed(what + " succeeded, expected " + code);
    }

    private static void expect(boolean condition, String message) throws CheckFailed {
        if (!condition) {
            throw new CheckFailed(message);
        }
    }

    private static List<String> ids(List<Document> documents) {
        return documents.stream().map(Document::getId).toList();
    }

    private static byte[] download(String url) throws Exception {
        HttpResponse<byte[]> response = get(url);
        expect(response.statusCode() == 200, "GET " + url + " answered " + response.statusCode());
        return response.body();
    }

    private static HttpResponse<byte[]> get(String url) throws IOException, InterruptedException {
        HttpRequest request = HttpRequest.newBuilder(URI.create(url)).timeout(OwnerClient.CALL_TIMEOUT).GET().build();
        return HTTP.send(request, HttpResponse.BodyHandlers.ofByteArray());
    }

    /** An RGB PNG of a colour gradient. */
    private static byte[] gradientPng(int width, int height) throws IOException {
        BufferedImage picture = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                picture.setRGB(x, y, (x * 4 % 256) << 16 | (y * 5 % 256) << 8 | 128);
            }
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        if (!ImageIO.write(picture, "png", png)) {
            throw new IOException("ImageIO has no PNG writer");
        }
        return png.toByteArray();
    }

    private static byte[] randomBytes(int size) {
        byte[] data = new byte[size];
        RANDOM.nextBytes(data);
        return data;
    }

    private static String sha256(byte[] data) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (java.security.NoSuchAlgorithmException impossible) {
            throw new IllegalStateException(impossible);
        }
    }

    private static String letters(int count) {
        StringBuilder text = new StringBuilder(count);
        for (int i = 0; i < count; i++) {
            text.append((char) ('a' + i % 26));
        }
        return text.toString();
    }
}
