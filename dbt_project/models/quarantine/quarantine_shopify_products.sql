{{ config(alias='shopify_products') }}
{{ quarantine_view('shopify', 'products') }}
