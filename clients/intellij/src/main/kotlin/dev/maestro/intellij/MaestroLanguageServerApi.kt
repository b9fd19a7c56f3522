package dev.maestro.intellij

import com.google.gson.JsonObject
import org.eclipse.lsp4j.jsonrpc.services.JsonRequest
import org.eclipse.lsp4j.services.LanguageServer
import java.util.concurrent.CompletableFuture

/** The server's custom requests (docs/lsp.md "Custom requests"), next to the standard LSP ones. */
interface MaestroLanguageServerApi : LanguageServer {
    @JsonRequest("maestro/impactedTargets")
    fun impactedTargets(params: Map<String, Any?>): CompletableFuture<JsonObject>

    @JsonRequest("maestro/cacheStats")
    fun cacheStats(params: Map<String, Any?>): CompletableFuture<JsonObject>

    @JsonRequest("maestro/explain")
    fun explain(params: Map<String, Any?>): CompletableFuture<JsonObject>

    @JsonRequest("maestro/status")
    fun status(params: Map<String, Any?>): CompletableFuture<JsonObject>
}
