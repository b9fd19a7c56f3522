package dev.maestro.intellij

import com.intellij.openapi.project.Project
import com.intellij.openapi.wm.WindowManager
import com.redhat.devtools.lsp4ij.client.LanguageClientImpl
import org.eclipse.lsp4j.jsonrpc.services.JsonNotification
import java.util.concurrent.ConcurrentHashMap

/** Handles the server's custom notifications (typed in Protocol.kt, docs/lsp.md). */
class MaestroLanguageClient(project: Project) : LanguageClientImpl(project) {
    /** Every test's latest result, by node id: runs stream them in batches, each test once. */
    val latestResults = ConcurrentHashMap<String, TestResult>()

    @JsonNotification(MaestroMethods.TEST_RESULTS)
    fun testResults(params: TestResultsParams) {
        for (test in params.tests.orEmpty()) {
            val id = test.id ?: continue
            latestResults[id] = test
        }
    }

    /** Every run's end (run commands answer at once with the run id; the outcome comes here).
     * It carries the counts; the tests' results came before it in testResults. */
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
                    (if (cached > 0) " ($cached files cached)" else "") + failing(result.runId)
            }
        }
        WindowManager.getInstance().getStatusBar(project)?.info = text
        if (error != null || (result.failed ?: 0) > 0 || (result.errors ?: 0) > 0) {
            MaestroServer.notify(project, text, warning = true)
        }
    }

    /** "; failing: a, b and 2 more" for the run's failed or errored tests, or "". */
    private fun failing(runId: String?): String {
        val names = latestResults.values
            .filter { it.runId == runId && (it.outcome == "failed" || it.outcome == "error") }
            .mapNotNull { it.id }
            .sorted()
        if (names.isEmpty()) return ""
        val more = if (names.size > 3) " and ${names.size - 3} more" else ""
        return "; failing: ${names.take(3).joinToString(", ")}$more"
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
