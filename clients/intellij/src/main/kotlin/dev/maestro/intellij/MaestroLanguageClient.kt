package dev.maestro.intellij

import com.google.gson.JsonObject
import com.intellij.openapi.project.Project
import com.intellij.openapi.wm.WindowManager
import com.redhat.devtools.lsp4ij.client.LanguageClientImpl
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification

/** Handles the server's custom notifications (docs/lsp.md "Custom notifications"). */
class MaestroLanguageClient(project: Project) : LanguageClientImpl(project) {
    @JsonNotification("maestro/testResults")
    fun testResults(result: JsonObject) {
        val passed = result.get("passed")?.asInt ?: 0
        val failed = result.get("failed")?.asInt ?: 0
        val cached = result.get("cachedFiles")?.asInt ?: 0
        val label = result.get("label")?.takeIf { !it.isJsonNull }?.asString ?: "run"
        val text = "Maestro: $label: $passed passed, $failed failed" + if (cached > 0) " ($cached files cached)" else ""
        WindowManager.getInstance().getStatusBar(project)?.info = text
        if (failed > 0) MaestroServer.notify(project, text, warning = true)
    }

    @JsonNotification("maestro/statusChanged")
    fun statusChanged(params: JsonObject) {
        val state = params.get("state")?.asString ?: return
        WindowManager.getInstance().getStatusBar(project)?.info = "Maestro daemon: $state"
    }
}
