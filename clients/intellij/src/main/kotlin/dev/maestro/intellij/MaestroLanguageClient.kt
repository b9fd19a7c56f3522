package dev.maestro.intellij

import com.intellij.openapi.project.Project
import com.intellij.openapi.wm.WindowManager
import com.redhat.devtools.lsp4ij.client.LanguageClientImpl
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification

/** Handles the server's custom notifications (typed in Protocol.kt, docs/lsp.md). */
class MaestroLanguageClient(project: Project) : LanguageClientImpl(project) {
    /** Every run's end (run commands answer at once with the run id; the outcome comes here). */
    @JsonNotification(MaestroMethods.RUN_FINISHED)
    fun runFinished(result: RunResult) {
        val label = result.label ?: "run"
        val error = result.error
        val text = when {
            error != null -> "Maestro: $label: ${error.message}"
            result.cancelled == true -> "Maestro: $label: ${result.message ?: "cancelled"}"
            result.message != null -> "Maestro: ${result.message}"
            else -> {
                val cached = result.cachedFiles ?: 0
                "Maestro: $label: ${result.passed ?: 0} passed, ${result.failed ?: 0} failed" +
                    if (cached > 0) " ($cached files cached)" else ""
            }
        }
        WindowManager.getInstance().getStatusBar(project)?.info = text
        if (error != null || (result.failed ?: 0) > 0 || (result.errors ?: 0) > 0) {
            MaestroServer.notify(project, text, warning = true)
        }
    }

    @JsonNotification(MaestroMethods.RUN_PROGRESS)
    fun runProgress(params: RunProgressParams) {
        val count = if (params.total != null) "${params.done ?: 0}/${params.total} tests" else params.message
        WindowManager.getInstance().getStatusBar(project)?.info = "Maestro: $count"
    }

    @JsonNotification(MaestroMethods.STATUS_CHANGED)
    fun statusChanged(params: StatusChangedParams) {
        val state = params.state ?: return
        WindowManager.getInstance().getStatusBar(project)?.info = "Maestro daemon: $state"
    }
}
