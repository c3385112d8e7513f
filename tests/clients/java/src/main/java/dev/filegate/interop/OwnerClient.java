// The generated grpc-java client, calling the gateway as one owner: every call
// carries the owner's bearer token and a deadline, and in gzip mode every
// request message is gzip-compressed.
package dev.filegate.interop;

import com.google.protobuf.ByteString;
import dev.filegate.v1.DeleteRequest;
import dev.filegate.v1.Document;
import dev.filegate.v1.Event;
import dev.filegate.v1.FileGatewayServiceGrpc;
import dev.filegate.v1.FileGatewayServiceGrpc.FileGatewayServiceBlockingStub;
import dev.filegate.v1.FileGatewayServiceGrpc.FileGatewayServiceStub;
import dev.filegate.v1.ListDocumentsRequest;
import dev.filegate.v1.ListDocumentsResponse;
import dev.filegate.v1.ReadRequest;
import dev.filegate.v1.ReadResponse;
import dev.filegate.v1.UploadRequest;
import dev.filegate.v1.UploadResponse;
import dev.filegate.v1.UploadSpec;
import dev.filegate.v1.WatchEventsRequest;
import io.grpc.Channel;
import io.grpc.ClientInterceptor;
import io.grpc.Metadata;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

final class OwnerClient {
    static final Duration CALL_TIMEOUT = Duration.ofSeconds(60);
    static final int MIB = 1024 * 1024;
    private static final Duration RESULT_GRACE = Duration.ofSeconds(5);
    private static final Metadata.Key<String> AUTHORIZATION =
            Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

    private final FileGatewayServiceBlockingStub blocking;
    private final FileGatewayServiceStub async;

    OwnerClient(Channel channel, String token, boolean gzip) {
        Metadata headers = new Metadata();
        headers.put(AUTHORIZATION, "Bearer " + token);
        ClientInterceptor auth = MetadataUtils.newAttachHeadersInterceptor(headers);
        FileGatewayServiceBlockingStub blockingStub =
                FileGatewayServiceGrpc.newBlockingStub(channel).withInterceptors(auth);
        FileGatewayServiceStub asyncStub = FileGatewayServiceGrpc.newStub(channel).withInterceptors(auth);
        if (gzip) {
            blockingStub = blockingStub.withCompression("gzip");
            asyncStub = asyncStub.withCompression("gzip");
        }
        this.blocking = blockingStub;
        this.async = asyncStub;
    }

    /** The blocking stub for one call, with the usual deadline. */
    FileGatewayServiceBlockingStub call() {
        return blocking.withDeadlineAfter(CALL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
    }

    /** The blocking stub for one call that also sends the `extra` headers. */
    FileGatewayServiceBlockingStub callWith(Metadata extra) {
        return call().withInterceptors(MetadataUtils.newAttachHeadersInterceptor(extra));
    }

    /** Sends every message on one Upload stream, ends it and waits for the response. */
    UploadResponse upload(List<UploadRequest> messages) throws Exception {
        UploadCall upload = startUpload(CALL_TIMEOUT);
        messages.forEach(upload::send);
        return upload.finish();
    }

    /** Opens an Upload stream with `deadline`; the caller sends its messages. */
    UploadCall startUpload(Duration deadline) {
        CompletableFuture<UploadResponse> response = new CompletableFuture<>();
        StreamObserver<UploadRequest> requests = async
                .withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS)
                .upload(completing(response));
        return new UploadCall(requests, response, deadline);
    }

    /** Deletes the document. */
    void delete(Document document) {
        call().delete(DeleteRequest.newBuilder().setDocumentId(document.getId()).build());
    }

    /** One Read stream, collected whole. */
    ReadResult read(String documentId, long offset, long limit) {
        ReadRequest request = ReadRequest.newBuilder()
                .setDocumentId(documentId).setReadOffset(offset).setReadLimit(limit).build();
        Iterator<ReadResponse> stream = call().read(request);
        ReadResponse first = null;
        ByteString data = ByteString.EMPTY;
        int messages = 0;
        int largest = 0;
        while (stream.hasNext()) {
            ReadResponse message = stream.next();
            first = first == null ? message : first;
            data = data.concat(message.getData());
            messages++;
            largest = Math.max(largest, message.getData().size());
        }
        return new ReadResult(first, data.toByteArray(), messages, largest);
    }

    /** Every document of the owner, following `next_page_token` (at most 100 pages). */
    List<Document> listAll(int pageSize) {
        List<Document> documents = new ArrayList<>();
        String pageToken = "";
        for (int page = 0; page < 100; page++) {
            ListDocumentsResponse reply = call().listDocuments(ListDocumentsRequest.newBuilder()
                    .setPageSize(pageSize).setPageToken(pageToken).build());
            documents.addAll(reply.getDocumentsList());
            pageToken = reply.getNextPageToken();
            if (pageToken.isEmpty()) {
                return documents;
            }
        }
        throw new IllegalStateException("ListDocuments still had pages after 100");
    }

    /** Opens a WatchEvents stream after `afterEventId`, with the usual deadline. */
    EventStream watch(long afterEventId) {
        EventStream events = new EventStream();
        async.withDeadlineAfter(CALL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS).watchEvents(
                WatchEventsRequest.newBuilder().setAfterEventId(afterEventId).build(), events);
        return events;
    }

    /** The first message of an Upload stream of a new file: its spec alone. */
    static UploadRequest specMessage(UploadSpec spec) {
        return UploadRequest.newBuilder().setSpec(spec).build();
    }

    /** Messages of at most 1 MiB carrying `data[from, to)`, each with its write_offset. */
    static List<UploadRequest> chunks(byte[] data, int from, int to) {
        List<UploadRequest> messages = new ArrayList<>();
        for (int at = from; at < to; at += MIB) {
            messages.add(UploadRequest.newBuilder()
                    .setWriteOffset(at)
                    .setData(ByteString.copyFrom(data, at, Math.min(MIB, to - at)))
                    .build());
        }
        return messages;
    }

    /** Waits for a call's result and rethrows its failure (a StatusRuntimeException) as is. */
    static <T> T await(CompletableFuture<T> result, Duration timeout) throws Exception {
        try {
            return result.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException failed) {
            throw failed.getCause() instanceof Exception cause ? cause : failed;
        } catch (TimeoutException late) {
            throw new IllegalStateException("no result within " + timeout.toSeconds() + " s");
        }
    }

    private static <T> StreamObserver<T> completing(CompletableFuture<T> result) {
        return new StreamObserver<>() {
            @Override
            public void onNext(T value) {
                result.complete(value);
            }

            @Override
            public void onError(Throwable error) {
                result.completeExceptionally(error);
            }

            @Override
            public void onCompleted() {
                result.completeExceptionally(new IllegalStateException("the call ended without a response"));
            }
        };
    }

    /** An open Upload stream. */
    static final class UploadCall {
        private final StreamObserver<UploadRequest> requests;
        private final CompletableFuture<UploadResponse> response;
        private final Duration deadline;

        private UploadCall(StreamObserver<UploadRequest> requests, CompletableFuture<UploadResponse> response,
                Duration deadline) {
            this.requests = requests;
            this.response = response;
            this.deadline = deadline;
        }

        void send(UploadRequest message) {
            requests.onNext(message);
        }

        /** Ends the stream and waits for the response. */
        UploadResponse finish() throws Exception {
            requests.onCompleted();
            return result();
        }

        /** Waits for the response, or the call's failure, without ending the stream. */
        UploadResponse result() throws Exception {
            return await(response, deadline.plus(RESULT_GRACE));
        }
    }

    /** What a Read stream delivered. */
    record ReadResult(ReadResponse first, byte[] data, int messages, int largestMessage) {}

    /** An open WatchEvents stream whose events queue up until read. */
    static final class EventStream implements ClientResponseObserver<WatchEventsRequest, Event>, AutoCloseable {
        private final BlockingQueue<Object> arrivals = new LinkedBlockingQueue<>();
        private volatile ClientCallStreamObserver<WatchEventsRequest> call;

        /** The next event, or null if none came by `until`; throws if the stream failed or ended. */
        Event next(Instant until) throws Exception {
            long waitMillis = Math.max(0, Duration.between(Instant.now(), until).toMillis());
            Object arrival = arrivals.poll(waitMillis, TimeUnit.MILLISECONDS);
            if (arrival instanceof Exception failure) {
                arrivals.add(failure);
                throw failure;
            }
            return (Event) arrival;
        }

        @Override
        public void beforeStart(ClientCallStreamObserver<WatchEventsRequest> requestStream) {
            call = requestStream;
        }

        @Override
        public void onNext(Event event) {
            arrivals.add(event);
        }

        @Override
        public void onError(Throwable error) {
            arrivals.add(error instanceof Exception failure ? failure : new RuntimeException(error));
        }

        @Override
        public void onCompleted() {
            arrivals.add(new IllegalStateException("the WatchEvents stream ended"));
        }

        @Override
        public void close() {
            call.cancel("the check is done", null);
        }
    }
}
